"""Notification delivery: the channels staff configure, each subscriber's preferences, and one
delivery row per (notice, channel) — the delivery log shown on the subscriber card.

``portal.notifications.delivery`` turns notices (``models.notices``) into deliveries and sends
them through RQ; a delivery's ``state`` moves queued -> sending -> sent | failed (or back to
queued for a retry) only by conditional UPDATEs, so two jobs never send the same row twice;
queued -> cancelled when a warning no longer holds at its turn to go (the subscriber paid).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, one_of, utcnow

CHANNEL_KINDS = ("email", "sms", "telegram")
SMTP_SECURITY = ("starttls", "ssl", "none")
DELIVERY_STATES = ("queued", "sending", "sent", "failed", "cancelled")
LOCALES = ("ru", "en")


class NotificationChannel(db.Model):
    """One configured channel per kind. ``settings`` holds what may be shown (host, port,
    security, login, sender; the API URL; the bot's name); ``secret_enc`` the SMTP password,
    the SMS api_id or the bot token, encrypted (billing/crypto.py) and never shown back."""

    __tablename__ = "notification_channels"
    __table_args__ = (
        one_of("kind", CHANNEL_KINDS),
        CheckConstraint("rate > 0 AND rate <= 1000", name="rate"),
        CheckConstraint("timeout > 0 AND timeout <= 120", name="timeout"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    secret_enc: Mapped[str | None] = mapped_column(String(1000))
    rate: Mapped[int] = mapped_column(Integer, default=5)       # messages per second at most
    timeout: Mapped[int] = mapped_column(Integer, default=10)   # seconds per call
    # Telegram: the next getUpdates offset (the last update_id seen + 1)
    poll_offset: Mapped[int | None] = mapped_column(BigInteger)
    demo_emulator: Mapped[bool] = mapped_column(default=False)  # `make run` points it at its emulator
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationPreference(db.Model):
    """A subscriber's choices (no row: every channel, all messages, Russian)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (one_of("locale", LOCALES),)

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    email: Mapped[bool] = mapped_column(default=True)
    sms: Mapped[bool] = mapped_column(default=True)
    telegram: Mapped[bool] = mapped_column(default=True)
    # only service-critical messages (a block, a payment): the rest are not sent
    only_critical: Mapped[bool] = mapped_column(default=False)
    locale: Mapped[str] = mapped_column(String(5), default="ru")
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    # the cabinet's one-time /start token, hashed (sha256 hex) like every token we hand out
    telegram_link_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    telegram_link_expires: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationDelivery(db.Model):
    """One message of one notice by one channel: what was sent where, and how it went."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        one_of("channel", CHANNEL_KINDS),
        one_of("state", DELIVERY_STATES),
        UniqueConstraint("notice_id", "channel", name="uq_notification_deliveries_notice_channel"),
        Index("ix_notification_deliveries_subscriber_id_id", "subscriber_id", "id"),  # the card's log
        Index("ix_notification_deliveries_state_next", "state", "next_attempt_at"),   # the sweep's queue
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # sent again after it may have gone out (a killed job, a timeout after sending): at most once
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)   # handed to RQ (None: not yet)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)    # a job took it to send
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(100))        # the gateway's message id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
