"""What staff write to subscribers: admin overrides of the built-in message templates
(``portal.notifications.templates.DEFAULTS``) and the bulk messages sent to a filtered list.

A template row exists only for an (event, channel, language) an admin changed; "reset to
default" deletes it. A bulk message records who sent what to which filter and how many
subscribers it reached; its ``request_key`` (one per opened form) makes a double click or a
retry send nothing twice (the notices' dedup keys carry it too).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, one_of, utcnow
from .notices import NOTICE_EVENTS

MESSAGE_CHANNELS = ("email", "sms", "telegram")
MESSAGE_LOCALES = ("ru", "en")


class NotificationTemplate(db.Model):
    __tablename__ = "notification_templates"
    __table_args__ = (
        UniqueConstraint("event", "channel", "locale"),
        one_of("event", NOTICE_EVENTS),
        one_of("channel", MESSAGE_CHANNELS),
        one_of("locale", MESSAGE_LOCALES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(500), default="")  # e-mail only
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class BulkMessage(db.Model):
    __tablename__ = "bulk_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)
    # the list's filter as staff chose it (agent, tariff, balance below, status)
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    recipients: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
