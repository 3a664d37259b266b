"""Stalker: the user each account is bound to

Revision ID: 1a13c0b2d4e5
Revises: e1b4c7d2a913
Create Date: 2026-12-03 13:15:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision = '1a13c0b2d4e5'
down_revision = 'e1b4c7d2a913'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
