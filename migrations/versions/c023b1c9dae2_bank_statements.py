"""Bank statement imports and the unmatched payments queue (issue 18 part 3)

Revision ID: c023b1c9dae2
Revises: bf22a0b8c9d1
Create Date: 2026-12-03 16:50:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'c023b1c9dae2'
down_revision = 'bf22a0b8c9d1'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
