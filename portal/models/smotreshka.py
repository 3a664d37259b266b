"""«Смотрёшка» (Lifestream): upsale v3 transactions, every upsale call for audit, and the
drift report of the last re-sync (portal/platforms/smotreshka)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import Money, UTCDateTime, one_of, utcnow

# "committing": taken by one commit call, inside its transaction only (a parallel repeat waits)
UPSALE_STATES = ("pending", "committing", "committed", "refused")
DRIFT_KINDS = ("missing_on_platform", "extra_on_platform", "account_missing", "orphan")
UPSALE_KINDS = ("add", "replace")


class SmotreshkaUpsale(db.Model):
    """One upsale v3 transaction: recorded by ensure (no money moves), done once by commit."""
    __tablename__ = "smotreshka_upsales"
    __table_args__ = (one_of("kind", UPSALE_KINDS), one_of("state", UPSALE_STATES))

    # our billingTransactionId (a UUID)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    qs_transaction_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # add | replace
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    new_service_id: Mapped[int] = mapped_column(ForeignKey("catalog_services.id"))
    old_service_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_services.id"))
    # the parameters ensure saw, so a repeat with other parameters is told apart (409)
    params: Mapped[dict] = mapped_column(JSON)
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    amount_quoted: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    reply: Mapped[dict | None] = mapped_column(JSON)  # the commit's answer, replayed on a repeat
    assigned_service_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmotreshkaCall(db.Model):
    """Every call the platform made on our upsale endpoints, and our answer."""
    __tablename__ = "smotreshka_calls"
    __table_args__ = (Index("ix_smotreshka_calls_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    endpoint: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    query: Mapped[dict] = mapped_column(JSON)
    body: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[int] = mapped_column(Integer)
    answer: Mapped[dict] = mapped_column(JSON)
    result: Mapped[str | None] = mapped_column(String(32))
    transaction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    ms: Mapped[int] = mapped_column(Integer, default=0)


class SmotreshkaDrift(db.Model):
    """One difference between billing and the platform found by the last drift check."""
    __tablename__ = "smotreshka_drift"
    __table_args__ = (one_of("kind", DRIFT_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    username: Mapped[str | None] = mapped_column(String(200))
    platform_id: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(100))
    billing: Mapped[list | None] = mapped_column(JSON)   # subscriptions billing wants
    platform: Mapped[list | None] = mapped_column(JSON)  # subscriptions the platform has
