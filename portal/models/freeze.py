"""Grace before the balance block, and voluntary freezes (holdup) of accounts.

The operator's rules are one row each (id 1), saved by an admin: ``GraceRule`` (how many days a
contract may stay below its credit limit before the balance rule blocks it; a contract may
override it, ``Contract.grace_days``) and ``FreezeRule`` (what a subscriber may freeze). A
``Freeze`` is one account frozen from ``starts_on`` through ``until``. The logic is
portal.billing.grace and portal.billing.freeze.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, one_of, utcnow

FREEZE_STATES = ("active", "ended")


class GraceRule(db.Model):
    """Days below the credit limit before the balance block, operator-wide (0: block at once)."""

    __tablename__ = "grace_rules"
    __table_args__ = (CheckConstraint("days >= 0 AND days <= 90", name="days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    days: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(100))


class FreezeRule(db.Model):
    """What a subscriber may freeze: a period of min_days..max_days, at most per_year freezes
    started in a calendar year (BILLING_TZ), cooldown_days between the end of one and the start
    of the next, for a fee (0: free). Off until an admin saves it enabled."""

    __tablename__ = "freeze_rules"
    __table_args__ = (
        CheckConstraint("min_days >= 1 AND min_days <= max_days", name="min_days"),
        CheckConstraint("max_days <= 366", name="max_days"),
        CheckConstraint("per_year >= 1", name="per_year"),
        CheckConstraint("cooldown_days >= 0", name="cooldown_days"),
        CheckConstraint("fee >= 0", name="fee"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    min_days: Mapped[int] = mapped_column(Integer, default=7)
    max_days: Mapped[int] = mapped_column(Integer, default=90)
    per_year: Mapped[int] = mapped_column(Integer, default=2)
    cooldown_days: Mapped[int] = mapped_column(Integer, default=30)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(100))


class Freeze(db.Model):
    """One account frozen (blocked with the reason ``subscriber``) from ``starts_on`` through
    ``until`` (BILLING_TZ, inclusive); the end job unfreezes it the day after, or the subscriber
    or staff earlier (``ended_on``: the first day in service again). Its fee's ledger entry
    carries the key ``freeze-fee:<id>``."""

    __tablename__ = "freezes"
    __table_args__ = (
        one_of("status", FREEZE_STATES),
        CheckConstraint("until >= starts_on", name="until"),
        CheckConstraint("fee >= 0", name="fee"),
        # one freeze in force per account, whatever races past the contract's lock
        Index("uq_freezes_active_account", "account_id", unique=True,
              postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
        # the end job finds the due ones; the limits count an account's freezes by start
        Index("ix_freezes_status_until", "status", "until"),
        Index("ix_freezes_account_id_starts_on", "account_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    starts_on: Mapped[date] = mapped_column(Date)
    until: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    started_by: Mapped[str] = mapped_column(String(100))
    ended_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the request's one-time key (the form's nonce): a double click freezes once
    request_key: Mapped[str | None] = mapped_column(String(100), unique=True)

    account: Mapped[Account] = relationship()  # noqa: F821
