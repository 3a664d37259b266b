"""What the payments list searches, beside the ledger: one row per payment, kept by the
database itself (issue 16 item 2, bench/README.md's sixth and seventh passes).

``payment_texts``: a payment's ledger entry id, its contract, its payment id (the idempotency
key) and comment as posted, what the list filters by (its time, source and cashier, as
posted: a filtered search tests them here before the texts), and its payer's text (the
contract's ``search_text``: its number and its subscriber's name, phones, e-mail, login, folded
by ``models/search.py``). A search of
the payments list walks this narrow table in entry-id order instead of each walked payment's
contract (at a million payments that probe was 4 buffer reads a payment, 17-24 ms of a search
for a common surname), and finds a payer's payments by its own trigram index (PostgreSQL).

The ledger is append-only, so the rows are written by triggers, whoever posts (the ORM, the
posting's one-statement CTE on PostgreSQL, a bulk load):

* ``AFTER INSERT ON ledger_entries WHEN kind = 'payment'``: the payment's row, with its
  contract's ``search_text`` as it is then;
* ``AFTER UPDATE OF search_text ON contracts`` (when it changed): that contract's rows get the
  new payer text (a subscriber's rename already rewrites their contracts' texts, in the same
  transaction: ``models/search.py``), so a renamed payer's payments follow the card.

Nothing else writes it; no ledger row is ever updated for it. The same triggers on SQLite
(no trigram index there: it scans, as its other searches do). Migration ``9d5e6f7a8b90``
creates the table, the triggers and the rows of the payments already posted;
``db.create_all()`` creates the triggers through the DDL hooks below."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, BigInteger, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, trigram_index


class PaymentText(db.Model):
    __tablename__ = "payment_texts"
    __table_args__ = (trigram_index("ix_payment_texts_payer_trgm", "payer"),)

    entry_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_entries.id", ondelete="CASCADE"),
        primary_key=True, autoincrement=False)
    # (a payer's rename rewrites their contracts' rows by it)
    contract_id: Mapped[int] = mapped_column(Integer, index=True)
    key: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(String(500))
    payer: Mapped[str | None] = mapped_column(Text)
    # the list's filters, as the ledger row has them (no index: tested on the walked rows)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(16))
    cashier_id: Mapped[int | None] = mapped_column(Integer)


# The triggers, as migration 9d5e6f7a8b90 creates them (keep the two the same).
_COPY = """INSERT INTO payment_texts (entry_id, contract_id, key, comment, payer, created_at, source, cashier_id)
    SELECT NEW.id, NEW.contract_id, NEW.idempotency_key, NEW.comment, c.search_text, NEW.created_at, NEW.source,
           NEW.cashier_id
    FROM contracts c WHERE c.id = NEW.contract_id"""
_PAYER = "UPDATE payment_texts SET payer = NEW.search_text WHERE contract_id = NEW.id"

POSTGRESQL = [
    f"""CREATE FUNCTION payment_texts_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_COPY};
    RETURN NULL;
END $$""",
    """CREATE TRIGGER ledger_entries_payment_texts AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.kind = 'payment') EXECUTE FUNCTION payment_texts_copy()""",
    f"""CREATE FUNCTION payment_texts_payer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_PAYER};
    RETURN NULL;
END $$""",
    """CREATE TRIGGER contracts_payment_texts AFTER UPDATE OF search_text ON contracts
    FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text) EXECUTE FUNCTION payment_texts_payer()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS ledger_entries_payment_texts ON ledger_entries",
    "DROP TRIGGER IF EXISTS contracts_payment_texts ON contracts",
    "DROP FUNCTION IF EXISTS payment_texts_copy()",
    "DROP FUNCTION IF EXISTS payment_texts_payer()",
]
SQLITE = [
    f"""CREATE TRIGGER ledger_entries_payment_texts AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN NEW.kind = 'payment' BEGIN {_COPY}; END""",
    f"""CREATE TRIGGER contracts_payment_texts AFTER UPDATE OF search_text ON contracts
    FOR EACH ROW WHEN OLD.search_text IS NOT NEW.search_text BEGIN {_PAYER}; END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS ledger_entries_payment_texts",
    "DROP TRIGGER IF EXISTS contracts_payment_texts",
]

for _sql in POSTGRESQL:
    event.listen(PaymentText.__table__, "after_create", DDL(_sql).execute_if(dialect="postgresql"))
for _sql in SQLITE:
    event.listen(PaymentText.__table__, "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in POSTGRESQL_DROP:
    event.listen(PaymentText.__table__, "before_drop", DDL(_sql).execute_if(dialect="postgresql"))
for _sql in SQLITE_DROP:
    event.listen(PaymentText.__table__, "before_drop", DDL(_sql).execute_if(dialect="sqlite"))
