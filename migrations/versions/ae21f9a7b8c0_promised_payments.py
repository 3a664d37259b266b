"""Promised payments: operator rules and the payments taken (issue 18)

Revision ID: ae21f9a7b8c0
Revises: 9c20e8f6a7b9
Create Date: 2026-12-03 16:05:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'ae21f9a7b8c0'
down_revision = '9c20e8f6a7b9'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
