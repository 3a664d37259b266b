"""Grace before the balance block, "do not block until", voluntary freezes (issue 19)

Revision ID: 2629172f3048
Revises: 1528061e2f37
Create Date: 2026-12-03 19:10:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '2629172f3048'
down_revision = '1528061e2f37'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('do_not_block_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('grace_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('below_limit_since', sa.Date(), nullable=True))
        batch_op.create_index('ix_contracts_below_limit_since', ['below_limit_since'], unique=False,
                              postgresql_where=sa.text('below_limit_since IS NOT NULL'),
                              sqlite_where=sa.text('below_limit_since IS NOT NULL'))
    # Contracts already below their limit: since their balance block (or today), so that a grace
    # configured later does not lift the blocks of today's debtors as if they had just gone short.
    op.execute("UPDATE contracts SET below_limit_since = COALESCE("
               "(SELECT MIN(a.status_changed_on) FROM accounts a WHERE a.contract_id = contracts.id "
               "AND a.status = 'blocked' AND (a.block_reasons & 1) = 1), CURRENT_DATE) "
               "WHERE balance + credit_limit < 0")
    op.create_table('grace_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by', sa.String(length=100), nullable=True),
    sa.CheckConstraint('days >= 0 AND days <= 90', name=op.f('ck_grace_rules_days')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grace_rules'))
    )
    op.create_table('freeze_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('min_days', sa.Integer(), nullable=False),
    sa.Column('max_days', sa.Integer(), nullable=False),
    sa.Column('per_year', sa.Integer(), nullable=False),
    sa.Column('cooldown_days', sa.Integer(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by', sa.String(length=100), nullable=True),
    sa.CheckConstraint('min_days >= 1 AND min_days <= max_days', name=op.f('ck_freeze_rules_min_days')),
    sa.CheckConstraint('max_days <= 366', name=op.f('ck_freeze_rules_max_days')),
    sa.CheckConstraint('per_year >= 1', name=op.f('ck_freeze_rules_per_year')),
    sa.CheckConstraint('cooldown_days >= 0', name=op.f('ck_freeze_rules_cooldown_days')),
    sa.CheckConstraint('fee >= 0', name=op.f('ck_freeze_rules_fee')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_freeze_rules'))
    )
    op.create_table('freezes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('started_by', sa.String(length=100), nullable=False),
    sa.Column('ended_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_key', sa.String(length=100), nullable=True),
    sa.CheckConstraint("status IN ('active', 'ended')", name=op.f('ck_freezes_status')),
    sa.CheckConstraint('until >= starts_on', name=op.f('ck_freezes_until')),
    sa.CheckConstraint('fee >= 0', name=op.f('ck_freezes_fee')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_freezes_account_id_accounts')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_freezes_contract_id_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_freezes')),
    sa.UniqueConstraint('request_key', name=op.f('uq_freezes_request_key'))
    )
    with op.batch_alter_table('freezes', schema=None) as batch_op:
        batch_op.create_index('ix_freezes_account_id_starts_on', ['account_id', 'starts_on'], unique=False)
        batch_op.create_index('ix_freezes_status_until', ['status', 'until'], unique=False)
        # one in force per account
        batch_op.create_index('uq_freezes_active_account', ['account_id'], unique=True,
                              postgresql_where=sa.text("status = 'active'"),
                              sqlite_where=sa.text("status = 'active'"))


def downgrade():
    with op.batch_alter_table('freezes', schema=None) as batch_op:
        batch_op.drop_index('uq_freezes_active_account')
        batch_op.drop_index('ix_freezes_status_until')
        batch_op.drop_index('ix_freezes_account_id_starts_on')
    op.drop_table('freezes')
    op.drop_table('freeze_rules')
    op.drop_table('grace_rules')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_index('ix_contracts_below_limit_since')
        batch_op.drop_column('below_limit_since')
        batch_op.drop_column('grace_days')
        batch_op.drop_column('do_not_block_until')
