"""Payment sources, cashiers and storno entries (issue 18 part 5)

Revision ID: d124c2daebf3
Revises: c023b1c9dae2
Create Date: 2026-12-03 16:55:00

* ``ledger_entries.source``: where a payment came from (cash desk / staff, bank statement,
  payment agent, online, API v1), CHECKed like the other kinds; ``cashier_id``: the staff
  member who typed it in (foreign key, ON DELETE RESTRICT as the ledger's others).
* ``ledger_entries.cancels_id``: a storno names the payment it cancels; unique, so a payment
  has at most one storno whatever the clicks (a foreign key, NO ACTION: checked at the end of
  a statement, so deleting a whole ledger in one statement works where RESTRICT refuses).
* ``ck_ledger_entries_reason`` gains ``storno`` (dropped and created again).
* Partial indexes (source, id) and (cashier_id, id) over payments for the payments list's filters.

Older payments get their source from what the ledger knows (the same rule as
portal.billing.ledger.source_of, frozen here): an ``agent:`` key is a payment agent's, ``bank:``
a bank statement's, ``yookassa:`` (or the author ``platform:yookassa``) an online payment, an
author ``api:<token>`` API v1, anything else (staff, demo, system) the cash desk. The cashier is
the staff user the author ``staff:<login>`` names.

Downgrade refuses while storno entries exist (their reason would break the older CHECK and their
link would be lost): cancel nothing, or remove them by hand first, knowingly.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd124c2daebf3'
down_revision = 'c023b1c9dae2'
branch_labels = None
depends_on = None


def _in(column, *values):
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


OLD_REASONS = ("account.update", "account.activate", "account.block", "account.unblock", "account.disable",
               "service.assign", "service.end", "service.expiry", "service.resume", "service.suspend")
SOURCES = ("cash", "statement", "agent", "online", "api")
PAYMENT = sa.text("kind = 'payment'")
INDEXES = [("ix_ledger_entries_payment_source_id", ["source", "id"]),
           ("ix_ledger_entries_payment_cashier_id", ["cashier_id", "id"])]
BACKFILL = """
UPDATE ledger_entries SET source = CASE
    WHEN idempotency_key LIKE 'agent:%' THEN 'agent'
    WHEN idempotency_key LIKE 'bank:%' THEN 'statement'
    WHEN idempotency_key LIKE 'yookassa:%' OR author = 'platform:yookassa' THEN 'online'
    WHEN author LIKE 'api:%' THEN 'api'
    ELSE 'cash' END
WHERE kind = 'payment'
"""
CASHIERS = """
UPDATE ledger_entries SET cashier_id =
    (SELECT s.id FROM staff_users s WHERE 'staff:' || s.login = ledger_entries.author)
WHERE kind = 'payment' AND author LIKE 'staff:%'
"""


def upgrade():
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("cashier_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancels_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.drop_constraint(op.f("ck_ledger_entries_reason"), type_="check")
        batch.create_check_constraint(op.f("ck_ledger_entries_reason"), _in("reason", *OLD_REASONS, "storno"))
        batch.create_check_constraint(op.f("ck_ledger_entries_source"), _in("source", *SOURCES))
        batch.create_foreign_key(op.f("fk_ledger_entries_cashier_id_staff_users"), "staff_users",
                                 ["cashier_id"], ["id"], ondelete="RESTRICT")
        batch.create_foreign_key(op.f("fk_ledger_entries_cancels_id_ledger_entries"), "ledger_entries",
                                 ["cancels_id"], ["id"])
        batch.create_unique_constraint(op.f("uq_ledger_entries_cancels_id"), ["cancels_id"])
    op.execute(BACKFILL)
    op.execute(CASHIERS)
    for name, columns in INDEXES:
        op.create_index(name, "ledger_entries", columns, postgresql_where=PAYMENT, sqlite_where=PAYMENT)


def downgrade():
    n = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM ledger_entries WHERE reason = 'storno' "
                                      "OR cancels_id IS NOT NULL")).scalar()
    if n:
        raise RuntimeError(f"d124c2daebf3: {n} storno entries exist; the older schema cannot hold them "
                           "(nothing was changed). Remove them by hand, knowingly, and downgrade again.")
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name="ledger_entries")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_constraint(op.f("uq_ledger_entries_cancels_id"), type_="unique")
        batch.drop_constraint(op.f("fk_ledger_entries_cancels_id_ledger_entries"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_ledger_entries_cashier_id_staff_users"), type_="foreignkey")
        batch.drop_constraint(op.f("ck_ledger_entries_source"), type_="check")
        batch.drop_constraint(op.f("ck_ledger_entries_reason"), type_="check")
        batch.create_check_constraint(op.f("ck_ledger_entries_reason"), _in("reason", *OLD_REASONS))
        batch.drop_column("cancels_id")
        batch.drop_column("cashier_id")
        batch.drop_column("source")
