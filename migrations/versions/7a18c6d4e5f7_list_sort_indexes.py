"""Indexes for searching and sorting lists at a million rows (issue 16)

Revision ID: 7a18c6d4e5f7
Revises: 6f17b5c3d4e5
Create Date: 2026-12-03 16:00:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '7a18c6d4e5f7'
down_revision = '6f17b5c3d4e5'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
