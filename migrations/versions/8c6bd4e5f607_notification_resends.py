"""Notification deliveries count the times a message was sent again after it may have gone out (issue 19)

Revision ID: 8c6bd4e5f607
Revises: 6a49b2c3d4e5
Create Date: 2026-12-03 23:40:00

``notification_deliveries.resends``: a message whose sending job was killed, or whose service
did not answer after the request went out (a read timeout, the connection dropped after DATA),
may have reached the subscriber; it is sent again at most once. The count used to be a prefix
of ``last_error``, which a success or a later failure overwrote (so kill -> revive -> 5xx ->
kill -> revive could repeat). Existing rows start at 0; adding a column with a constant default
rewrites nothing on PostgreSQL 11+.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '8c6bd4e5f607'
down_revision = '6a49b2c3d4e5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notification_deliveries") as batch_op:
        batch_op.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("notification_deliveries") as batch_op:
        batch_op.drop_column("resends")
