"""Ledger entries say which change posted them (ledger_entries.reason)

Revision ID: 5e16a4b2c3d4
Revises: 4d15f3e5a7b8
Create Date: 2026-12-03 13:40:00

Charges and refunds posted at once by a change (a block, a disable, a service ended or
assigned) keep the change's name, so that the ledger can say what a refund was for. Earlier
entries have none: they read as before (the service and the period).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5e16a4b2c3d4'
down_revision = '4d15f3e5a7b8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("reason")
