"""Staff sessions that can be ended; login failures while Redis is down

Revision ID: 4d15f3e5a7b8
Revises: 3c14e2d4f6a7
Create Date: 2026-12-03 13:15:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision = '4d15f3e5a7b8'
down_revision = '3c14e2d4f6a7'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
