"""Bank statements (1C exchange files) and the payments read from them.

A statement is stored when staff upload it, as a preview: each incoming payment a row with the
contract it was matched to (or its candidates). Posting turns the rows into ledger payments
(portal.billing.statements); what matched nothing waits in the queue (``status`` 'queued')
until staff assign it to a contract or dismiss it with a reason. Rows are never deleted.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, one_of, utcnow

STATEMENT_STATES = ("preview", "posted")
# pending: in a preview; posted: in the ledger; duplicate: its key was in the ledger already;
# queued: matched no contract, waits for staff; dismissed: staff said it is not ours to post
BANK_PAYMENT_STATES = ("pending", "posted", "duplicate", "queued", "dismissed")
# how the contract was found: number in the purpose, payer INN, payer account, staff's choice;
# name: only suggested (candidates), never posted without staff
MATCH_KINDS = ("number", "inn", "account", "name", "staff", "ambiguous", "none")


class BankStatement(db.Model):
    __tablename__ = "bank_statements"
    __table_args__ = (one_of("status", STATEMENT_STATES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(200))
    account: Mapped[str | None] = mapped_column(String(34))  # the header's РасчСчет (first)
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    documents: Mapped[int] = mapped_column(Integer)           # every document in the file
    status: Mapped[str] = mapped_column(String(16), default="preview")
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    posted_by: Mapped[str | None] = mapped_column(String(100))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BankPayment(db.Model):
    __tablename__ = "bank_payments"
    __table_args__ = (
        one_of("status", BANK_PAYMENT_STATES),
        one_of("match", MATCH_KINDS),
        CheckConstraint("amount > 0", name="amount"),
        Index("ix_bank_payments_statement_id_id", "statement_id", "id"),
        Index("ix_bank_payments_status_id", "status", "id"),  # the queue
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("bank_statements.id"))
    line: Mapped[int] = mapped_column(Integer)                # where the document starts in the file
    number: Mapped[str] = mapped_column(String(32))
    doc_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    payer_account: Mapped[str] = mapped_column(String(34), default="")
    payer_inn: Mapped[str] = mapped_column(String(12), default="")
    payer_name: Mapped[str] = mapped_column(String(300), default="")
    purpose: Mapped[str] = mapped_column(String(500), default="")
    key: Mapped[str] = mapped_column(String(200))             # the ledger idempotency key
    match: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    candidates: Mapped[list] = mapped_column(JSON, default=list)  # contract ids to choose from
    status: Mapped[str] = mapped_column(String(16), default="pending")
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.id"))
    reason: Mapped[str | None] = mapped_column(String(500))   # why staff dismissed it
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    statement: Mapped[BankStatement] = relationship()
    contract = relationship("Contract")
