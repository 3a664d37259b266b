"""Promised payments: operator rules and the payments taken (issue 18)

Revision ID: ae21f9a7b8c0
Revises: 9c20e8f6a7b9
Create Date: 2026-12-03 16:05:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'ae21f9a7b8c0'
down_revision = '9c20e8f6a7b9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('promised_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('amount_mode', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('max_amount', sa.BigInteger(), nullable=True),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('per_month', sa.Integer(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by', sa.String(length=100), nullable=True),
    sa.CheckConstraint("amount_mode IN ('fixed', 'unblock')", name=op.f('ck_promised_rules_amount_mode')),
    sa.CheckConstraint('days >= 1', name=op.f('ck_promised_rules_days')),
    sa.CheckConstraint('per_month >= 1', name=op.f('ck_promised_rules_per_month')),
    sa.CheckConstraint('fee >= 0', name=op.f('ck_promised_rules_fee')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promised_rules'))
    )
    op.create_table('promised_rule_tariffs',
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['promised_rules.id'], name=op.f('fk_promised_rule_tariffs_rule_id_promised_rules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_promised_rule_tariffs_tariff_id_tariffs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rule_id', 'tariff_id', name=op.f('pk_promised_rule_tariffs'))
    )
    op.create_table('promised_payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('taken_on', sa.Date(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('taken_by', sa.String(length=100), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('request_key', sa.String(length=100), nullable=True),
    sa.CheckConstraint("status IN ('active', 'returned')", name=op.f('ck_promised_payments_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_promised_payments_amount')),
    sa.CheckConstraint('fee >= 0', name=op.f('ck_promised_payments_fee')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_promised_payments_contract_id_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promised_payments')),
    sa.UniqueConstraint('request_key', name=op.f('uq_promised_payments_request_key'))
    )
    with op.batch_alter_table('promised_payments', schema=None) as batch_op:
        batch_op.create_index('ix_promised_payments_contract_id_taken_on', ['contract_id', 'taken_on'], unique=False)
        batch_op.create_index('ix_promised_payments_status_until', ['status', 'until'], unique=False)
        # one in force per contract
        batch_op.create_index('uq_promised_payments_active_contract', ['contract_id'], unique=True,
                              postgresql_where=sa.text("status = 'active'"),
                              sqlite_where=sa.text("status = 'active'"))


def downgrade():
    with op.batch_alter_table('promised_payments', schema=None) as batch_op:
        batch_op.drop_index('uq_promised_payments_active_contract')
        batch_op.drop_index('ix_promised_payments_status_until')
        batch_op.drop_index('ix_promised_payments_contract_id_taken_on')
    op.drop_table('promised_payments')
    op.drop_table('promised_rule_tariffs')
    op.drop_table('promised_rules')
