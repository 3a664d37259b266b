"""Notification templates (admin overrides of the defaults), bulk messages, the subscriber's language (issue 19)

Revision ID: 0427f50d1e26
Revises: f326e4fc0d15
Create Date: 2026-12-03 19:10:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0427f50d1e26'
down_revision = 'f326e4fc0d15'
branch_labels = None
depends_on = None

EVENTS = ("low_balance", "blocked", "payment_received", "promised_expiring", "service_assigned",
          "service_ended", "service_bought", "freeze_started", "freeze_ended", "bulk")


def _listed(values):
    return ", ".join(f"'{v}'" for v in values)


def upgrade():
    # the subscriber's language: their messages, and the cabinet's after they log in
    with op.batch_alter_table('subscribers') as batch:
        batch.add_column(sa.Column('language', sa.String(length=2), server_default='ru', nullable=False))
        batch.create_check_constraint(op.f('ck_subscribers_language'), "language IN ('ru', 'en')")
    op.create_table('notification_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('locale', sa.String(length=2), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.CheckConstraint(f"event IN ({_listed(EVENTS)})", name=op.f('ck_notification_templates_event')),
    sa.CheckConstraint("channel IN ('email', 'sms', 'telegram')", name=op.f('ck_notification_templates_channel')),
    sa.CheckConstraint("locale IN ('ru', 'en')", name=op.f('ck_notification_templates_locale')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_templates')),
    sa.UniqueConstraint('event', 'channel', 'locale', name=op.f('uq_notification_templates_event'))
    )
    op.create_table('bulk_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_messages')),
    sa.UniqueConstraint('request_key', name=op.f('uq_bulk_messages_request_key'))
    )


def downgrade():
    op.drop_table('bulk_messages')
    op.drop_table('notification_templates')
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_constraint(op.f('ck_subscribers_language'), type_='check')
        batch.drop_column('language')
