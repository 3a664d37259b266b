"""Indexes for searching and sorting lists at a million rows (issue 16)

Revision ID: 7a18c6d4e5f7
Revises: 6f17b5c3d4e5
Create Date: 2026-12-03 16:00:00

A searched or filtered staff list finds its page by a walk over the next few thousand rows of
its order, whose end is read off the sort column's index (``portal.listing.narrowed_page``).
With the id in the index that read is an index-only scan (no table pages): subscribers by
(full_name, id), which replaces the index on full_name alone, accounts by (login, id) and
contracts by (number, id) beside their unique indexes (those stay: they are the constraints).
The payments list's totals (count and sum of the payments in a period) read a partial index
of payments by time that carries the amount (an index-only scan, no table pages). Each index
takes seconds to build at a million rows and blocks writes to its table meanwhile.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7a18c6d4e5f7'
down_revision = '6f17b5c3d4e5'
branch_labels = None
depends_on = None

# (index, table, columns)
INDEXES = [
    ("ix_subscribers_full_name_id", "subscribers", ["full_name", "id"]),
    ("ix_accounts_login_id", "accounts", ["login", "id"]),
    ("ix_contracts_number_id", "contracts", ["number", "id"]),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    op.drop_index("ix_subscribers_full_name", table_name="subscribers")
    payment = sa.text("kind = 'payment'")
    op.create_index("ix_ledger_entries_payment_created_amount", "ledger_entries", ["created_at"], unique=False,
                    postgresql_include=["amount"], postgresql_where=payment, sqlite_where=payment)


def downgrade():
    op.drop_index("ix_ledger_entries_payment_created_amount", table_name="ledger_entries")
    op.create_index("ix_subscribers_full_name", "subscribers", ["full_name"], unique=False)
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
