"""«Интерсвязь» and BILLmanager: order retries, handlers per tariff, profile options

Revision ID: 3c14e2d4f6a7
Revises: 2b13d1c3e5f6
Create Date: 2026-12-03 13:15:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision = '3c14e2d4f6a7'
down_revision = '2b13d1c3e5f6'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
