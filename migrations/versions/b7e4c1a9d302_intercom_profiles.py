"""intercom: profiles we know, and which profiles an account's address may be on

Revision ID: b7e4c1a9d302
Revises: 3c1d2b9e6a4f
Create Date: 2026-11-22 06:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7e4c1a9d302'
down_revision = '3c1d2b9e6a4f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('intercom_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('created_by_us', sa.Boolean(), nullable=False),
    sa.Column('full_name', sa.String(length=300), nullable=True),
    sa.Column('phones', sa.JSON(), nullable=False),
    sa.Column('addresses', sa.JSON(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intercom_profiles')),
    sa.UniqueConstraint('login', name=op.f('uq_intercom_profiles_login'))
    )
    op.create_table('intercom_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_intercom_attachments_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intercom_attachments')),
    sa.UniqueConstraint('account_id', 'login', name='uq_intercom_attachments_account_login')
    )
    with op.batch_alter_table('intercom_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intercom_attachments_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intercom_attachments_login'), ['login'], unique=False)


def downgrade():
    with op.batch_alter_table('intercom_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intercom_attachments_login'))
        batch_op.drop_index(batch_op.f('ix_intercom_attachments_account_id'))
    op.drop_table('intercom_attachments')
    op.drop_table('intercom_profiles')
