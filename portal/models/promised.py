"""Promised payments (обещанный платёж): the operator's rules and the payments taken.

A promised payment is money the operator lends a contract for a few days: a credit in the
ledger that lifts the balance block at once, returned in full (a debit) when the days run out.
The rules are one row, operator-wide (``PromisedRule.id`` 1); the tariffs it allows are a
list beside it (none listed: every tariff). The logic is portal.billing.promised.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Column, Date, ForeignKey, Index, Integer, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, utcnow
from .catalog import Tariff

AMOUNT_MODES = ("fixed", "unblock")  # a set amount; or what lifts the balance block (up to a maximum)
PROMISED_STATES = ("active", "returned")


def _one_of(column: str, values) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


promised_rule_tariffs = Table(
    "promised_rule_tariffs",
    db.metadata,
    Column("rule_id", ForeignKey("promised_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("tariff_id", ForeignKey("tariffs.id", ondelete="CASCADE"), primary_key=True),
)


class PromisedRule(db.Model):
    """What the operator allows: how much, for how many days, how often, on which tariffs, for
    what fee. Off until an admin saves it enabled."""

    __tablename__ = "promised_rules"
    __table_args__ = (
        _one_of("amount_mode", AMOUNT_MODES),
        CheckConstraint("days >= 1", name="days"),
        CheckConstraint("per_month >= 1", name="per_month"),
        CheckConstraint("fee >= 0", name="fee"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    amount_mode: Mapped[str] = mapped_column(String(16), default="unblock")
    amount: Mapped[Decimal | None] = mapped_column(Money)      # the fixed amount
    max_amount: Mapped[Decimal | None] = mapped_column(Money)  # the most it may be (required for "unblock")
    days: Mapped[int] = mapped_column(Integer, default=3)
    per_month: Mapped[int] = mapped_column(Integer, default=1)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(100))

    tariffs: Mapped[list[Tariff]] = relationship(secondary=promised_rule_tariffs, order_by="Tariff.name")


class PromisedPayment(db.Model):
    """One promised payment: taken on ``taken_on`` (BILLING_TZ), in force through ``until``,
    returned by the first expiry job after that day. The ledger entries it posted carry the keys
    ``promised:<id>``, ``promised-fee:<id>`` and ``promised-return:<id>``."""

    __tablename__ = "promised_payments"
    __table_args__ = (
        _one_of("status", PROMISED_STATES),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("fee >= 0", name="fee"),
        # at most one in force per contract, whatever races past the contract's lock
        Index("uq_promised_payments_active_contract", "contract_id", unique=True,
              postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
        # the month limit counts a contract's payments by day; the expiry job finds the due ones
        Index("ix_promised_payments_contract_id_taken_on", "contract_id", "taken_on"),
        Index("ix_promised_payments_status_until", "status", "until"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    taken_on: Mapped[date] = mapped_column(Date)
    until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    taken_by: Mapped[str] = mapped_column(String(100))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the request's one-time key (the form's nonce): a double click or a repeat takes nothing twice
    request_key: Mapped[str | None] = mapped_column(String(100), unique=True)

    contract: Mapped[Contract] = relationship()  # noqa: F821
