"""Online payments through ЮKassa (issue 18 part 2)

Revision ID: bf22a0b8c9d1
Revises: ae21f9a7b8c0
Create Date: 2026-12-03 16:50:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'bf22a0b8c9d1'
down_revision = 'ae21f9a7b8c0'
branch_labels = None
depends_on = None


BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
STATES = "'new', 'failed', 'pending', 'waiting_for_capture', 'succeeded', 'canceled'"


def upgrade():
    op.create_table('online_shops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('api_url', sa.String(length=500), nullable=False),
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('secret_enc', sa.String(length=500), nullable=False),
    sa.Column('vat_code', sa.Integer(), nullable=False),
    sa.Column('receipt', sa.Boolean(), nullable=False),
    sa.Column('payment_subject', sa.String(length=32), nullable=False),
    sa.Column('payment_mode', sa.String(length=32), nullable=False),
    sa.Column('min_sum', sa.BigInteger(), nullable=False),
    sa.Column('max_sum', sa.BigInteger(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('demo_emulator', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('yookassa')", name=op.f('ck_online_shops_kind')),
    sa.CheckConstraint('vat_code IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)', name=op.f('ck_online_shops_vat_code')),
    sa.CheckConstraint('min_sum > 0', name=op.f('ck_online_shops_min_sum')),
    sa.CheckConstraint('max_sum >= min_sum', name=op.f('ck_online_shops_max_sum')),
    sa.CheckConstraint('timeout > 0 AND timeout <= 60', name=op.f('ck_online_shops_timeout')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_online_shops')),
    sa.UniqueConstraint('kind', name=op.f('uq_online_shops_kind'))
    )
    op.create_table('online_payments',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('idempotence_key', sa.String(length=64), nullable=False),
    sa.Column('payment_id', sa.String(length=64), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('confirmation_url', sa.String(length=1000), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('ledger_entry_id', BIG_ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(f'state IN ({STATES})', name=op.f('ck_online_payments_state')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_online_payments_amount')),
    sa.ForeignKeyConstraint(['shop_id'], ['online_shops.id'], name=op.f('fk_online_payments_shop_id_online_shops')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_online_payments_contract_id_contracts')),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'],
                            name=op.f('fk_online_payments_ledger_entry_id_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_online_payments')),
    sa.UniqueConstraint('idempotence_key', name=op.f('uq_online_payments_idempotence_key')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_online_payments_payment_id'))
    )
    op.create_index('ix_online_payments_contract_id_id', 'online_payments', ['contract_id', 'id'], unique=False)
    op.create_index(op.f('ix_online_payments_created_at'), 'online_payments', ['created_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_online_payments_created_at'), table_name='online_payments')
    op.drop_index('ix_online_payments_contract_id_id', table_name='online_payments')
    op.drop_table('online_payments')
    op.drop_table('online_shops')
