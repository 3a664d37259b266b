"""«Смотрёшка»: upsale v3 transactions, upsale calls (audit), drift report

Revision ID: a8c3e5d1f0b6
Revises: f9935e69c87c
Create Date: 2026-11-23 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'a8c3e5d1f0b6'
down_revision = 'f9935e69c87c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'smotreshka_upsales',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('qs_transaction_id', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('new_service_id', sa.Integer(), nullable=False),
        sa.Column('old_service_id', sa.Integer(), nullable=True),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('trial_days', sa.Integer(), nullable=False),
        sa.Column('amount_quoted', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('reply', sa.JSON(), nullable=True),
        sa.Column('assigned_service_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('committed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.ForeignKeyConstraint(['new_service_id'], ['catalog_services.id']),
        sa.ForeignKeyConstraint(['old_service_id'], ['catalog_services.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('qs_transaction_id'),
    )
    op.create_index('ix_smotreshka_upsales_account_id', 'smotreshka_upsales', ['account_id'])
    op.create_table(
        'smotreshka_calls',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
        sa.Column('remote_addr', sa.String(length=64), nullable=True),
        sa.Column('query', sa.JSON(), nullable=False),
        sa.Column('body', sa.JSON(), nullable=True),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('answer', sa.JSON(), nullable=False),
        sa.Column('result', sa.String(length=32), nullable=True),
        sa.Column('transaction_id', sa.String(length=36), nullable=True),
        sa.Column('ms', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_smotreshka_calls_at', 'smotreshka_calls', ['at'])
    op.create_index('ix_smotreshka_calls_transaction_id', 'smotreshka_calls', ['transaction_id'])
    op.create_table(
        'smotreshka_drift',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('username', sa.String(length=200), nullable=True),
        sa.Column('platform_id', sa.String(length=64), nullable=True),
        sa.Column('external_id', sa.String(length=100), nullable=True),
        sa.Column('billing', sa.JSON(), nullable=True),
        sa.Column('platform', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_smotreshka_drift_account_id', 'smotreshka_drift', ['account_id'])


def downgrade():
    op.drop_index('ix_smotreshka_drift_account_id', table_name='smotreshka_drift')
    op.drop_table('smotreshka_drift')
    op.drop_index('ix_smotreshka_calls_transaction_id', table_name='smotreshka_calls')
    op.drop_index('ix_smotreshka_calls_at', table_name='smotreshka_calls')
    op.drop_table('smotreshka_calls')
    op.drop_index('ix_smotreshka_upsales_account_id', table_name='smotreshka_upsales')
    op.drop_table('smotreshka_upsales')
