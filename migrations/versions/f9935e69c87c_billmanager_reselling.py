"""BILLmanager reselling: handlers, imported tariffs, resold services; data centers,
departments and tasks

Revision ID: f9935e69c87c
Revises: 5d2e8f4a1c07
Create Date: 2026-11-22 04:55:11.480319

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f9935e69c87c'
down_revision = '5d2e8f4a1c07'
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('data_centers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_centers')),
    sa.UniqueConstraint('name', name=op.f('uq_data_centers_name'))
    )
    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments')),
    sa.UniqueConstraint('name', name=op.f('uq_departments_name'))
    )
    op.create_table('bm_handlers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('itemtype', sa.String(length=32), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('password_enc', sa.Text(), nullable=True),
    sa.Column('datacenter_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('min_balance', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_balance', sa.BigInteger(), nullable=True),
    sa.Column('balance_currency', sa.String(length=8), nullable=True),
    sa.Column('last_balance_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('pricelist', sa.JSON(), nullable=True),
    sa.Column('pricelist_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['datacenter_id'], ['data_centers.id'], name=op.f('fk_bm_handlers_datacenter_id_data_centers')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_bm_handlers_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bm_handlers')),
    sa.UniqueConstraint('name', name=op.f('uq_bm_handlers_name'))
    )
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=True),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_tasks_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('key', name=op.f('uq_tasks_key'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_department_id'), ['department_id'], unique=False)
        batch_op.create_index('ix_tasks_state_id', ['state', 'id'], unique=False)

    op.create_table('bm_tariffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handler_id', sa.Integer(), nullable=False),
    sa.Column('remote_id', sa.String(length=32), nullable=False),
    sa.Column('itemtype', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('remote_name', sa.String(length=200), nullable=False),
    sa.Column('remote_datacenter', sa.String(length=32), nullable=True),
    sa.Column('remote_datacenter_name', sa.String(length=200), nullable=True),
    sa.Column('currency', sa.String(length=8), nullable=True),
    sa.Column('periods', sa.JSON(), nullable=False),
    sa.Column('resources', sa.JSON(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('remote_active', sa.Boolean(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['handler_id'], ['bm_handlers.id'], name=op.f('fk_bm_tariffs_handler_id_bm_handlers')),
    sa.ForeignKeyConstraint(['service_id'], ['catalog_services.id'], name=op.f('fk_bm_tariffs_service_id_catalog_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bm_tariffs')),
    sa.UniqueConstraint('handler_id', 'remote_id', name='uq_bm_tariffs_handler_remote')
    )
    with op.batch_alter_table('bm_tariffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bm_tariffs_handler_id'), ['handler_id'], unique=False)

    op.create_table('bm_services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('handler_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('assigned_service_id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('remote_id', sa.String(length=32), nullable=True),
    sa.Column('remote_status', sa.Integer(), nullable=True),
    sa.Column('remote_status_msg', sa.String(length=300), nullable=True),
    sa.Column('remote_expires', sa.Date(), nullable=True),
    sa.Column('remote_params', sa.JSON(), nullable=True),
    sa.Column('order_snapshot', sa.JSON(), nullable=True),
    sa.Column('order_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('renewed_period', sa.Date(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_bm_services_account_id_accounts')),
    sa.ForeignKeyConstraint(['assigned_service_id'], ['assigned_services.id'], name=op.f('fk_bm_services_assigned_service_id_assigned_services')),
    sa.ForeignKeyConstraint(['handler_id'], ['bm_handlers.id'], name=op.f('fk_bm_services_handler_id_bm_handlers')),
    sa.ForeignKeyConstraint(['tariff_id'], ['bm_tariffs.id'], name=op.f('fk_bm_services_tariff_id_bm_tariffs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bm_services')),
    sa.UniqueConstraint('assigned_service_id', name=op.f('uq_bm_services_assigned_service_id'))
    )
    with op.batch_alter_table('bm_services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bm_services_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bm_services_handler_id'), ['handler_id'], unique=False)
        batch_op.create_index('ix_bm_services_state', ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_bm_services_tariff_id'), ['tariff_id'], unique=False)




def downgrade():

    with op.batch_alter_table('bm_services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bm_services_tariff_id'))
        batch_op.drop_index('ix_bm_services_state')
        batch_op.drop_index(batch_op.f('ix_bm_services_handler_id'))
        batch_op.drop_index(batch_op.f('ix_bm_services_account_id'))

    op.drop_table('bm_services')
    with op.batch_alter_table('bm_tariffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bm_tariffs_handler_id'))

    op.drop_table('bm_tariffs')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_state_id')
        batch_op.drop_index(batch_op.f('ix_tasks_department_id'))

    op.drop_table('tasks')
    op.drop_table('bm_handlers')
    op.drop_table('departments')
    op.drop_table('data_centers')

