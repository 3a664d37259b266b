"""Shared column types and helpers for the models."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.types import TypeDecorator

CENT = Decimal("0.01")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_minor(amount: Decimal | int | str) -> int:
    """Decimal roubles -> integer kopecks (half-up to the kopeck)."""
    return int((Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP) * 100).to_integral_value())


def from_minor(minor: int | None) -> Decimal | None:
    return None if minor is None else (Decimal(int(minor)) / 100).quantize(CENT)


class Money(TypeDecorator):
    """Decimal in Python, integer minor units (kopecks) in the database: exact on any backend."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else to_minor(value)

    def process_result_value(self, value, dialect):
        return from_minor(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on SQLite too (which stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value
