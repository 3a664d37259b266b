"""Payment agents and provider-protocol transactions (issue 18)

Revision ID: 9c20e8f6a7b9
Revises: 8b19d7e5f6a8
Create Date: 2026-12-03 16:00:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '9c20e8f6a7b9'
down_revision = '8b19d7e5f6a8'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('payment_agents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('slug', sa.String(length=40), nullable=False),
    sa.Column('account_field', sa.String(length=16), nullable=False),
    sa.Column('networks', sa.String(length=1000), nullable=False),
    sa.Column('secret_enc', sa.String(length=500), nullable=True),
    sa.Column('min_sum', sa.BigInteger(), nullable=False),
    sa.Column('max_sum', sa.BigInteger(), nullable=True),
    sa.Column('fee_percent_bp', sa.Integer(), nullable=False),
    sa.Column('fee_fixed', sa.BigInteger(), nullable=False),
    sa.Column('fee_withheld', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("account_field IN ('contract', 'login')", name=op.f('ck_payment_agents_account_field')),
    sa.CheckConstraint('min_sum > 0', name=op.f('ck_payment_agents_min_sum')),
    sa.CheckConstraint('max_sum IS NULL OR max_sum >= min_sum', name=op.f('ck_payment_agents_max_sum')),
    sa.CheckConstraint('fee_percent_bp >= 0 AND fee_percent_bp <= 10000', name=op.f('ck_payment_agents_fee_percent')),
    sa.CheckConstraint('fee_fixed >= 0', name=op.f('ck_payment_agents_fee_fixed')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_agents')),
    sa.UniqueConstraint('name', name=op.f('uq_payment_agents_name')),
    sa.UniqueConstraint('slug', name=op.f('uq_payment_agents_slug'))
    )
    op.create_table('agent_payments',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('txn_id', sa.String(length=64), nullable=False),
    sa.Column('txn_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('credited', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_agent_payments_amount')),
    sa.CheckConstraint('fee >= 0', name=op.f('ck_agent_payments_fee')),
    sa.ForeignKeyConstraint(['agent_id'], ['payment_agents.id'], name=op.f('fk_agent_payments_agent_id_payment_agents')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_agent_payments_contract_id_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_payments')),
    sa.UniqueConstraint('agent_id', 'txn_id', name='uq_agent_payments_agent_txn')
    )
    op.create_index(op.f('ix_agent_payments_contract_id'), 'agent_payments', ['contract_id'], unique=False)
    op.create_table('provider_calls',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('remote_addr', sa.String(length=64), nullable=False),
    sa.Column('command', sa.String(length=8), nullable=False),
    sa.Column('txn_id', sa.String(length=64), nullable=True),
    sa.Column('account', sa.String(length=64), nullable=True),
    sa.Column('sum', sa.String(length=32), nullable=True),
    sa.Column('txn_date', sa.String(length=32), nullable=True),
    sa.Column('result', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('prv_txn', sa.BigInteger(), nullable=True),
    sa.Column('ms', sa.Integer(), nullable=True),
    sa.CheckConstraint("command IN ('check', 'pay', 'other')", name=op.f('ck_provider_calls_command')),
    sa.CheckConstraint('result IN (0, 1, 4, 5, 7, 241, 242, 300)', name=op.f('ck_provider_calls_result')),
    sa.ForeignKeyConstraint(['agent_id'], ['payment_agents.id'], name=op.f('fk_provider_calls_agent_id_payment_agents'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_calls'))
    )
    op.create_index('ix_provider_calls_agent_id_id', 'provider_calls', ['agent_id', 'id'], unique=False)
    op.create_index('ix_provider_calls_agent_txn', 'provider_calls', ['agent_id', 'txn_id'], unique=False)
    op.create_index(op.f('ix_provider_calls_at'), 'provider_calls', ['at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_provider_calls_at'), table_name='provider_calls')
    op.drop_index('ix_provider_calls_agent_txn', table_name='provider_calls')
    op.drop_index('ix_provider_calls_agent_id_id', table_name='provider_calls')
    op.drop_table('provider_calls')
    op.drop_index(op.f('ix_agent_payments_contract_id'), table_name='agent_payments')
    op.drop_table('agent_payments')
    op.drop_table('payment_agents')
