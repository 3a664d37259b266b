"""Notices: billing's record that something happened a subscriber should hear about.

A notice is written by ``portal.billing.notices`` in the transaction of the change itself (a
payment, a block, a warning pass), so a change and its notice land together or not at all —
the outbox pattern of DESIGN.md applied to people instead of platforms. ``portal.notifications``
reads new notices, renders them per channel and language (templates), honours the subscriber's
preferences and delivers them through RQ; ``processed_at`` marks a notice taken into
deliveries. ``dedup_key`` makes a notice idempotent: the same warning for the same day, the
same payment, the same block is recorded once however often the pass or the callback runs.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, one_of, utcnow

NOTICE_EVENTS = (
    "low_balance",        # the money lasts N more days (a forecast threshold)
    "blocked",            # blocked for balance: how much lifts it and how to pay
    "payment_received",
    "promised_expiring",  # a promised payment is about to be returned
    "service_assigned",
    "service_ended",
    "service_bought",     # bought on a platform (upsale, cabinet self-service)
    "freeze_started",
    "freeze_ended",
    "bulk",               # a message staff wrote to a filtered list
)


class Notice(db.Model):
    __tablename__ = "notices"
    __table_args__ = (
        one_of("event", NOTICE_EVENTS),
        # the delivery sweep's queue: notices not yet taken into deliveries
        Index("ix_notices_unprocessed", "id", postgresql_where=text("processed_at IS NULL"),
              sqlite_where=text("processed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    event: Mapped[str] = mapped_column(String(32))
    # what the message needs, as JSON-safe values: amounts as strings ("498.06"), dates ISO
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    # service-critical (block, payment): sent even to a subscriber who opted out of the rest
    critical: Mapped[bool] = mapped_column(default=False)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
