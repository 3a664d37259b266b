"""Shared column types and helpers for the models."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime
from sqlalchemy.types import TypeDecorator

CENT = Decimal("0.01")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_minor(amount: Decimal | int | str) -> int:
    """Decimal roubles -> integer kopecks (half-up to the kopeck)."""
    return int((Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP) * 100).to_integral_value())


def from_minor(minor: int | None) -> Decimal | None:
    return None if minor is None else (Decimal(int(minor)) / 100).quantize(CENT)


def one_of(column: str, values) -> CheckConstraint:
    """A CHECK that a status, kind or reason column holds one of ``values`` (NULL passes, as
    CHECK lets unknown through: nullability is the column's own rule). Named
    ``ck_<table>_<column>`` by the metadata's naming convention; the migration 8b19d7e5f6a8
    creates the same constraints."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


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
            value = value.replace(tzinfo=UTC)
        elif value is not None:
            # SQLite compares the stored text: a bound in another zone (a BILLING_TZ day's start)
            # must be written in UTC like the rows, or after the operator's midnight it misses them
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def trigram_index(name: str, column: str, **kw):
    """A PostgreSQL trigram index (pg_trgm, GIN) on ``column``: it serves the lists' search,
    ``col ILIKE '%term%'`` (how SQLAlchemy's ``icontains`` renders on PostgreSQL), for terms of
    three characters or more. PostgreSQL only: SQLite scans, which is fine at its sizes. The
    pg_trgm extension is created by the migration 3c1d2b9e6a4f and, for ``db.create_all()``,
    by the ``before_create`` hook in ``portal.db_setup``."""
    from sqlalchemy import Index

    return Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"},
                 **kw).ddl_if(dialect="postgresql")


def _register_pg_trgm() -> None:
    """``db.create_all()`` on PostgreSQL creates pg_trgm before the tables, so the trigram
    indexes can be built (migrations do the same in 3c1d2b9e6a4f)."""
    from sqlalchemy import DDL, event

    from ..extensions import db

    event.listen(db.metadata, "before_create",
                 DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))


_register_pg_trgm()
