"""The operator's calendar: 'today' and month arithmetic in BILLING_TZ."""
from __future__ import annotations

import calendar
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


def tz() -> ZoneInfo:
    if has_app_context():
        return ZoneInfo(current_app.config["BILLING_TZ"])
    from ..config import load

    return ZoneInfo(load()["BILLING_TZ"])


# Set while billing works "as of" a given day (a charge run for --date D), so that every rule
# that asks for today's date (status change dates, expiry) sees that day.
_as_of: ContextVar[date | None] = ContextVar("billing_as_of", default=None)


def today() -> date:
    return _as_of.get() or datetime.now(tz()).date()


@contextmanager
def as_of(day: date):
    token = _as_of.set(day)
    try:
        yield day
    finally:
        _as_of.reset(token)


def month_start(d: date) -> date:
    return d.replace(day=1)


def days_in_month(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def month_end(d: date) -> date:
    return d.replace(day=days_in_month(d))
