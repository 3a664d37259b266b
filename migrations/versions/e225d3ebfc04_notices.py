"""Notices: billing's record of what a subscriber should hear about (issue 19)

Revision ID: e225d3ebfc04
Revises: d124c2daebf3
Create Date: 2026-12-03 19:05:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e225d3ebfc04'
down_revision = 'd124c2daebf3'
branch_labels = None
depends_on = None

EVENTS = ("low_balance", "blocked", "payment_received", "promised_expiring", "service_assigned",
          "service_ended", "service_bought", "freeze_started", "freeze_ended", "bulk")


def upgrade():
    listed = ", ".join(f"'{e}'" for e in EVENTS)
    op.create_table('notices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('critical', sa.Boolean(), nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(f"event IN ({listed})", name=op.f('ck_notices_event')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_notices_subscriber_id_subscribers')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_notices_contract_id_contracts')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_notices_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_notices_dedup_key'))
    )
    op.create_index(op.f('ix_notices_subscriber_id'), 'notices', ['subscriber_id'], unique=False)
    op.create_index('ix_notices_unprocessed', 'notices', ['id'], unique=False,
                    postgresql_where=sa.text('processed_at IS NULL'), sqlite_where=sa.text('processed_at IS NULL'))


def downgrade():
    op.drop_index('ix_notices_unprocessed', table_name='notices')
    op.drop_index(op.f('ix_notices_subscriber_id'), table_name='notices')
    op.drop_table('notices')
