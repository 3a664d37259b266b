"""BILLmanager: bm_services.order_key, the order form's one-time key (a double submit orders once)

Revision ID: 597cd721d739
Revises: a8c3e5d1f0b6
Create Date: 2026-11-22 05:20:14.415990

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '597cd721d739'
down_revision = 'a8c3e5d1f0b6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bm_services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_bm_services_order_key'), ['order_key'])



def downgrade():
    with op.batch_alter_table('bm_services', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_bm_services_order_key'), type_='unique')
        batch_op.drop_column('order_key')

