"""A notification delivery may be cancelled (issue 19 review)

Revision ID: 5f38a1b2c3d4
Revises: 483b394a5260
Create Date: 2026-12-03 22:50:00

``ck_notification_deliveries_state`` gains ``cancelled``: a queued low-balance, grace or block
warning that no longer holds when its turn to go comes (the subscriber paid meanwhile) is not
sent, and its row says so (portal/notifications/relevance.py). Downgrade turns cancelled rows
into failed ones, keeping their reason, before the older CHECK comes back.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5f38a1b2c3d4'
down_revision = '483b394a5260'
branch_labels = None
depends_on = None

OLD_STATES = ("queued", "sending", "sent", "failed")


def _in(*values):
    listed = ", ".join(f"'{v}'" for v in values)
    return f"state IN ({listed})"


def upgrade():
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_constraint(op.f("ck_notification_deliveries_state"), type_="check")
        batch.create_check_constraint(op.f("ck_notification_deliveries_state"), _in(*OLD_STATES, "cancelled"))


def downgrade():
    op.execute(sa.text("UPDATE notification_deliveries SET state = 'failed' WHERE state = 'cancelled'"))
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_constraint(op.f("ck_notification_deliveries_state"), type_="check")
        batch.create_check_constraint(op.f("ck_notification_deliveries_state"), _in(*OLD_STATES))
