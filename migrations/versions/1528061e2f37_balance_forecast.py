"""Balance forecast: the operator's low-balance thresholds (issue 19)

Revision ID: 1528061e2f37
Revises: 0427f50d1e26
Create Date: 2026-12-03 19:10:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '1528061e2f37'
down_revision = '0427f50d1e26'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('forecast_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('thresholds', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_settings'))
    )


def downgrade():
    op.drop_table('forecast_settings')
