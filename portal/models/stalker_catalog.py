"""Stalker catalog tables: which billing tariffs and services were imported from which Stalker
plans and packages."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class StalkerImportedTariff(db.Model):
    """A billing tariff imported from a Stalker plan (its id is the plan's external_id), so
    that import may re-sync it and refuses an unrelated tariff holding that id."""

    __tablename__ = "stalker_imported_tariffs"

    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id", ondelete="CASCADE"), primary_key=True)
    plan_name: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
