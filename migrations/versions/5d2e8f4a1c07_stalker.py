"""stalker: TV IDs, STBs and channels in billing, imported plans, the console's snapshot

Revision ID: 5d2e8f4a1c07
Revises: b7e4c1a9d302
Create Date: 2026-11-22 07:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5d2e8f4a1c07'
down_revision = 'b7e4c1a9d302'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stalker_tv_ids',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('tv_id', sa.BigInteger(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_stalker_tv_ids_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_stalker_tv_ids')),
    sa.UniqueConstraint('login', name=op.f('uq_stalker_tv_ids_login')),
    sa.UniqueConstraint('tv_id', name=op.f('uq_stalker_tv_ids_tv_id'))
    )
    op.create_table('stalker_stbs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('mac', sa.String(length=17), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_stalker_stbs_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stalker_stbs')),
    sa.UniqueConstraint('mac', name=op.f('uq_stalker_stbs_mac'))
    )
    op.create_index(op.f('ix_stalker_stbs_account_id'), 'stalker_stbs', ['account_id'], unique=False)
    op.create_table('stalker_channels',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('hd', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stalker_channels'))
    )
    op.create_table('stalker_snapshot_rows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=True),
    sa.Column('search', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stalker_snapshot_rows'))
    )
    op.create_index('ix_stalker_snapshot_rows_kind_id', 'stalker_snapshot_rows', ['kind', 'id'], unique=False)
    op.create_table('stalker_snapshots',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_stalker_snapshots'))
    )
    op.create_table('stalker_imported_tariffs',
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('plan_name', sa.String(length=200), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_stalker_imported_tariffs_tariff_id_tariffs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tariff_id', name=op.f('pk_stalker_imported_tariffs'))
    )


def downgrade():
    op.drop_table('stalker_imported_tariffs')
    op.drop_table('stalker_snapshots')
    op.drop_index('ix_stalker_snapshot_rows_kind_id', table_name='stalker_snapshot_rows')
    op.drop_table('stalker_snapshot_rows')
    op.drop_table('stalker_channels')
    op.drop_index(op.f('ix_stalker_stbs_account_id'), table_name='stalker_stbs')
    op.drop_table('stalker_stbs')
    op.drop_table('stalker_tv_ids')
