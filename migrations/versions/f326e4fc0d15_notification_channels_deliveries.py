"""Notification channels, subscribers' preferences and deliveries (issue 19)

Revision ID: f326e4fc0d15
Revises: e225d3ebfc04
Create Date: 2026-12-03 19:10:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f326e4fc0d15'
down_revision = 'e225d3ebfc04'
branch_labels = None
depends_on = None


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


KINDS = ("email", "sms", "telegram")


def upgrade():
    op.create_table('notification_channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('secret_enc', sa.String(length=1000), nullable=True),
    sa.Column('rate', sa.Integer(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('poll_offset', sa.BigInteger(), nullable=True),
    sa.Column('demo_emulator', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(_in("kind", KINDS), name=op.f('ck_notification_channels_kind')),
    sa.CheckConstraint('rate > 0 AND rate <= 1000', name=op.f('ck_notification_channels_rate')),
    sa.CheckConstraint('timeout > 0 AND timeout <= 120', name=op.f('ck_notification_channels_timeout')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_channels')),
    sa.UniqueConstraint('kind', name=op.f('uq_notification_channels_kind'))
    )
    op.create_table('notification_preferences',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.Boolean(), nullable=False),
    sa.Column('sms', sa.Boolean(), nullable=False),
    sa.Column('telegram', sa.Boolean(), nullable=False),
    sa.Column('only_critical', sa.Boolean(), nullable=False),
    sa.Column('locale', sa.String(length=5), nullable=False),
    sa.Column('telegram_chat_id', sa.BigInteger(), nullable=True),
    sa.Column('telegram_link_hash', sa.String(length=64), nullable=True),
    sa.Column('telegram_link_expires', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(_in("locale", ("ru", "en")), name=op.f('ck_notification_preferences_locale')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                            name=op.f('fk_notification_preferences_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('subscriber_id', name=op.f('pk_notification_preferences')),
    sa.UniqueConstraint('telegram_link_hash', name=op.f('uq_notification_preferences_telegram_link_hash'))
    )
    op.create_table('notification_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('notice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(_in("channel", KINDS), name=op.f('ck_notification_deliveries_channel')),
    sa.CheckConstraint(_in("state", ("queued", "sending", "sent", "failed")),
                       name=op.f('ck_notification_deliveries_state')),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_notification_deliveries_notice_id_notices')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                            name=op.f('fk_notification_deliveries_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries')),
    sa.UniqueConstraint('notice_id', 'channel', name='uq_notification_deliveries_notice_channel')
    )
    op.create_index('ix_notification_deliveries_subscriber_id_id', 'notification_deliveries',
                    ['subscriber_id', 'id'], unique=False)
    op.create_index('ix_notification_deliveries_state_next', 'notification_deliveries',
                    ['state', 'next_attempt_at'], unique=False)


def downgrade():
    op.drop_index('ix_notification_deliveries_state_next', table_name='notification_deliveries')
    op.drop_index('ix_notification_deliveries_subscriber_id_id', table_name='notification_deliveries')
    op.drop_table('notification_deliveries')
    op.drop_table('notification_preferences')
    op.drop_table('notification_channels')
