"""The low-balance forecast's operator-wide settings: one row (``ForecastSettings.id`` 1).

``thresholds`` are the days-left figures at which a subscriber hears "your money lasts N more
days" (e.g. 7, 3, 1), kept as a comma-separated list in ascending order; the logic is
``portal.billing.forecast``.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime


class ForecastSettings(db.Model):
    __tablename__ = "forecast_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    thresholds: Mapped[str] = mapped_column(String(100), default="1,3,7")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(100))
