"""charge_periods.run_id may be NULL: a change's charge posted at once, outside a charge run

Revision ID: d5a8f3b1c206
Revises: c4e7a2d9b815
Create Date: 2026-11-22 07:20:00

A change to an account (a service assigned or ended, a block lifted) posts what it made due
at once through billing.charging.charge_accounts, without a charge-run record; its charge
periods and ledger rows carry no run id.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd5a8f3b1c206'
down_revision = 'c4e7a2d9b815'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("charge_periods") as batch:
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=True)


def downgrade():
    op.execute("UPDATE charge_periods SET run_id = 0 WHERE run_id IS NULL")
    with op.batch_alter_table("charge_periods") as batch:
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
