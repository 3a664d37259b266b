"""Payment agents and provider-protocol transactions (issue 18)

Revision ID: 9c20e8f6a7b9
Revises: 8b19d7e5f6a8
Create Date: 2026-12-03 16:00:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '9c20e8f6a7b9'
down_revision = '8b19d7e5f6a8'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
