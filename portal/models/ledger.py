"""The money ledger of contracts and the bookkeeping of charge runs."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, one_of, trigram_index, utcnow

LEDGER_KINDS = ("payment", "charge", "correction", "refund")
# The changes that post charges and refunds at once (portal.billing.accounts, .blocking), as the
# audit log names them; the charge run's own entries have none.
LEDGER_REASONS = ("account.update", "account.activate", "account.block", "account.unblock", "account.disable",
                  "service.assign", "service.end", "service.expiry", "service.resume", "service.suspend",
                  "storno")
# Where a payment came from (the payments list filters by it; migration d124c2daebf3 fills it
# for older rows): the cash desk or staff typing it in, a bank statement, a payment agent (bank,
# terminal), an online payment, an operator's system through API v1. Every path that posts a
# payment names its own (billing.ledger.post's ``source``).
PAYMENT_CASH, PAYMENT_STATEMENT, PAYMENT_AGENT, PAYMENT_ONLINE, PAYMENT_API = \
    "cash", "statement", "agent", "online", "api"
PAYMENT_SOURCES = (PAYMENT_CASH, PAYMENT_STATEMENT, PAYMENT_AGENT, PAYMENT_ONLINE, PAYMENT_API)


class LedgerEntry(db.Model):
    """Append-only. Positive amounts raise the balance (payments, refunds), negative lower it.

    Its service and charge run are foreign keys ON DELETE RESTRICT: a service or a run that has
    money posted against it cannot be deleted, because SET NULL would rewrite ledger rows
    (losing what a charge was for) and CASCADE would delete them."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_contract_id_id", "contract_id", "id"),
        # the payments list's totals by period, from the index alone (migration 7a18c6d4e5f7)
        Index("ix_ledger_entries_payment_created_amount", "created_at", postgresql_include=["amount"],
              postgresql_where=text("kind = 'payment'"), sqlite_where=text("kind = 'payment'")),
        # The payments list searches payment id and comment as you type. Partial (payments
        # only), so the charge run's inserts of charges and refunds never touch them.
        trigram_index("ix_ledger_entries_payment_key_trgm", "idempotency_key",
                      postgresql_where=text("kind = 'payment'")),
        trigram_index("ix_ledger_entries_payment_comment_trgm", "comment",
                      postgresql_where=text("kind = 'payment'")),
        one_of("kind", LEDGER_KINDS),
        one_of("reason", LEDGER_REASONS),
        one_of("source", PAYMENT_SOURCES),
        # the payments list's filters by source and by cashier, walked in id order (migration
        # d124c2daebf3); partial like the others, so charges never touch them
        Index("ix_ledger_entries_payment_source_id", "source", "id",
              postgresql_where=text("kind = 'payment'"), sqlite_where=text("kind = 'payment'")),
        Index("ix_ledger_entries_payment_cashier_id", "cashier_id", "id",
              postgresql_where=text("kind = 'payment'"), sqlite_where=text("kind = 'payment'")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    comment: Mapped[str | None] = mapped_column(String(500))
    author: Mapped[str | None] = mapped_column(String(100))
    # Unique where the money comes from outside (payment id, upsale transaction id).
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # For charges and refunds: which service and which period they are for.
    assigned_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("assigned_services.id", ondelete="RESTRICT"))
    period_start: Mapped[date | None] = mapped_column(Date)
    charge_run_id: Mapped[int | None] = mapped_column(ForeignKey("charge_runs.id", ondelete="RESTRICT"))
    # For charges and refunds posted at once by a change (not by the charge run): the change,
    # as the audit log names it (account.block, service.end, ...), so that an entry can say why.
    reason: Mapped[str | None] = mapped_column(String(32))
    # Payments: where the money came from (PAYMENT_SOURCES) and, when staff typed it in, who.
    source: Mapped[str | None] = mapped_column(String(16))
    cashier_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    # A storno (reason "storno"): the payment it cancels. Unique: one storno per payment, also
    # for a double click or parallel requests (billing.ledger.storno). NO ACTION rather than
    # RESTRICT: checked at the statement's end, so a whole ledger deleted in one statement goes,
    # while a cancelled payment alone still cannot be deleted.
    cancels_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_entries.id"), unique=True)

    contract: Mapped[Contract] = relationship()  # noqa: F821


class ChargeRun(db.Model):
    __tablename__ = "charge_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_date: Mapped[date] = mapped_column(Date)
    scope: Mapped[str] = mapped_column(String(100), default="all")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    charged: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    refunded: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    blocked: Mapped[int] = mapped_column(Integer, default=0)


class ChargePeriod(db.Model):
    """What has been charged for one assigned service in one calendar month.

    ``days_mask`` has bit d set when day d of the month is paid for; ``amount`` is the net
    sum posted (kopecks). The primary key is the per-(service, period) lock that makes a
    second or parallel run post nothing.
    """

    __tablename__ = "charge_periods"

    assigned_service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    contract_id: Mapped[int] = mapped_column(Integer)
    days_mask: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the last run that changed the row posted, and which run it was (NULL: posted at
    # once for a change to the account, billing.charging.charge_accounts).
    delta: Mapped[int] = mapped_column(BigInteger, default=0)
    # not indexed: nothing looks rows up by run, and the index cost 5% of a full run
    run_id: Mapped[int | None] = mapped_column(Integer)
