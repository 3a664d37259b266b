"""The operator's calendar: 'today' and month arithmetic in BILLING_TZ."""
from __future__ import annotations

import calendar
import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


def tz() -> ZoneInfo:
    name = current_app.config["BILLING_TZ"] if has_app_context() else os.environ.get("BILLING_TZ", "Europe/Moscow")
    return ZoneInfo(name)


def today() -> date:
    return datetime.now(tz()).date()


def month_start(d: date) -> date:
    return d.replace(day=1)


def days_in_month(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def month_end(d: date) -> date:
    return d.replace(day=days_in_month(d))
