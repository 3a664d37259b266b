"""Job history, CHECK constraints, ledger foreign keys (issue 17)

Revision ID: 8b19d7e5f6a8
Revises: 7a18c6d4e5f7
Create Date: 2026-12-03 16:00:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '8b19d7e5f6a8'
down_revision = '7a18c6d4e5f7'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
