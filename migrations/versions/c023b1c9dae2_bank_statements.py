"""Bank statement imports and the unmatched payments queue (issue 18 part 3)

Revision ID: c023b1c9dae2
Revises: bf22a0b8c9d1
Create Date: 2026-12-03 16:50:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c023b1c9dae2'
down_revision = 'bf22a0b8c9d1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inn', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('bank_account', sa.String(length=20), nullable=True))
        batch_op.create_index('ix_subscribers_inn', ['inn'], unique=False)
        batch_op.create_index('ix_subscribers_bank_account', ['bank_account'], unique=False)
    op.create_table('bank_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('account', sa.String(length=34), nullable=True),
    sa.Column('date_from', sa.Date(), nullable=False),
    sa.Column('date_to', sa.Date(), nullable=False),
    sa.Column('documents', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('uploaded_by', sa.String(length=100), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('posted_by', sa.String(length=100), nullable=True),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('preview', 'posted')", name=op.f('ck_bank_statements_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_statements'))
    )
    op.create_table('bank_payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('doc_date', sa.Date(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('payer_account', sa.String(length=34), nullable=False),
    sa.Column('payer_inn', sa.String(length=12), nullable=False),
    sa.Column('payer_name', sa.String(length=300), nullable=False),
    sa.Column('purpose', sa.String(length=500), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('match', sa.String(length=16), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=True),
    sa.Column('candidates', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ledger_entry_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('resolved_by', sa.String(length=100), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'posted', 'duplicate', 'queued', 'dismissed')",
                       name=op.f('ck_bank_payments_status')),
    sa.CheckConstraint("match IN ('number', 'inn', 'account', 'name', 'staff', 'ambiguous', 'none')",
                       name=op.f('ck_bank_payments_match')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_bank_payments_amount')),
    sa.ForeignKeyConstraint(['statement_id'], ['bank_statements.id'],
                            name=op.f('fk_bank_payments_statement_id_bank_statements')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_bank_payments_contract_id_contracts')),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'],
                            name=op.f('fk_bank_payments_ledger_entry_id_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_payments'))
    )
    with op.batch_alter_table('bank_payments', schema=None) as batch_op:
        batch_op.create_index('ix_bank_payments_statement_id_id', ['statement_id', 'id'], unique=False)
        batch_op.create_index('ix_bank_payments_status_id', ['status', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('bank_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_payments_status_id')
        batch_op.drop_index('ix_bank_payments_statement_id_id')
    op.drop_table('bank_payments')
    op.drop_table('bank_statements')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_bank_account')
        batch_op.drop_index('ix_subscribers_inn')
        batch_op.drop_column('bank_account')
        batch_op.drop_column('inn')
