"""indexes for the staff lists: trigram search (PostgreSQL), contracts by balance

Revision ID: 3c1d2b9e6a4f
Revises: 7f8477e75f77
Create Date: 2026-11-22 05:00:00

The admin lists search with ``col ILIKE '%term%'`` (SQLAlchemy's ``icontains`` on
PostgreSQL); a pg_trgm GIN index on each searched column answers that from the index for terms
of three characters or more. SQLite has no such index type and scans (fine at its sizes), so
the extension and the GIN indexes are PostgreSQL only, like their declarations in the models
(``trigram_index`` in portal/models/base.py). Figures: bench/README.md, "tables.py".

On a large database each GIN index takes seconds to tens of seconds to build and blocks writes
to its table meanwhile; run the upgrade in a quiet hour.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '3c1d2b9e6a4f'
down_revision = '7f8477e75f77'
branch_labels = None
depends_on = None

# (index, table, column, partial-index condition)
TRIGRAM = [
    ("ix_subscribers_full_name_trgm", "subscribers", "full_name", None),
    ("ix_subscribers_email_trgm", "subscribers", "email", None),
    ("ix_subscribers_cabinet_login_trgm", "subscribers", "cabinet_login", None),
    ("ix_contracts_number_trgm", "contracts", "number", None),
    ("ix_accounts_login_trgm", "accounts", "login", None),
    ("ix_accounts_house_trgm", "accounts", "house", None),
    ("ix_ledger_entries_payment_key_trgm", "ledger_entries", "idempotency_key", "kind = 'payment'"),
    ("ix_ledger_entries_payment_comment_trgm", "ledger_entries", "comment", "kind = 'payment'"),
    ("ix_audit_log_summary_trgm", "audit_log", "summary", None),
    ("ix_audit_log_actor_trgm", "audit_log", "actor", None),
]


def upgrade():
    op.create_index("ix_contracts_balance_id", "contracts", ["balance", "id"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column, where in TRIGRAM:
        op.create_index(name, table, [column], unique=False, postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"},
                        postgresql_where=sa.text(where) if where else None)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _column, _where in reversed(TRIGRAM):
            op.drop_index(name, table_name=table)
        # the extension stays: other objects may use it, and it costs nothing unused
    op.drop_index("ix_contracts_balance_id", table_name="contracts")
