"""Online payments through ЮKassa (issue 18 part 2)

Revision ID: bf22a0b8c9d1
Revises: ae21f9a7b8c0
Create Date: 2026-12-03 16:50:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'bf22a0b8c9d1'
down_revision = 'ae21f9a7b8c0'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
