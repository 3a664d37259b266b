"""Payment sources, cashiers and storno entries (issue 18 part 5)

Revision ID: d124c2daebf3
Revises: c023b1c9dae2
Create Date: 2026-12-03 16:55:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'd124c2daebf3'
down_revision = 'c023b1c9dae2'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
