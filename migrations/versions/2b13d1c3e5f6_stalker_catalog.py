"""Stalker: text external ids, optional and mandatory packages per plan

Revision ID: 2b13d1c3e5f6
Revises: 1a13c0b2d4e5
Create Date: 2026-12-03 13:15:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision = '2b13d1c3e5f6'
down_revision = '1a13c0b2d4e5'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
