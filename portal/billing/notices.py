"""Notices' write side: billing records "tell this subscriber that …" in the caller's
transaction (the model's docstring, ``portal.models.notices``, says why). Delivery — templates,
preferences, channels, retries — is ``portal.notifications``; billing never imports it.

``record`` is for one event where it happens (a payment, a block); a set-based pass (the daily
forecast) inserts with ``insert_from_select`` into the same table, ``dedup_key`` making a rerun
of the pass record nothing twice.
"""
from __future__ import annotations

from functools import cache

from sqlalchemy import Select

from ..db_setup import dialect_insert
from ..extensions import db
from ..models import NOTICE_EVENTS, Notice, utcnow

# session.info key of the notices this transaction recorded, for an after-commit hand-off to RQ
ROWS_KEY = "notice_rows"


def record(*, subscriber_id: int, event: str, data: dict | None = None, contract_id: int | None = None,
           account_id: int | None = None, critical: bool = False, dedup_key: str | None = None) -> bool:
    """Record one notice; False when ``dedup_key`` was recorded before (nothing is written).

    ``data`` must be JSON-safe: amounts as strings of Decimals, dates as ISO strings."""
    if event not in NOTICE_EVENTS:
        raise ValueError(f"unknown notice event {event!r}")
    notice_id = db.session.execute(_record_statement(db.session.get_bind().dialect.name), dict(
        subscriber_id=subscriber_id, contract_id=contract_id, account_id=account_id, event=event,
        data=data or {}, critical=critical, dedup_key=dedup_key, created_at=utcnow(),
    )).scalar()
    if notice_id is None:
        return False
    db.session.info.setdefault(ROWS_KEY, []).append(notice_id)
    return True


@cache
def _record_statement(dialect: str):
    """``record``'s INSERT, built once per process and run with the row as its parameters (the
    ON CONFLICT clause is the dialect's own): building it per notice cost more than running it."""
    table = Notice.__table__
    return dialect_insert(table).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)


def insert_from_select(columns: list[str], select: Select) -> int:
    """Set-based: INSERT INTO notices (columns) SELECT …, skipping dedup keys already recorded.
    Returns the number of notices recorded; their ids join this transaction's for the
    after-commit hand-off, as ``record``'s do (the delivery sweep is the fallback)."""
    return run_insert(from_select_statement(columns, select))


def from_select_statement(columns: list[str], select: Select):
    """``insert_from_select``'s statement, for a caller that builds it once per process and runs
    it with parameters (``run_insert``): on a hot path, building it cost more than running it."""
    table = Notice.__table__
    return dialect_insert(table).from_select(columns, select).on_conflict_do_nothing(index_elements=["dedup_key"]) \
        .returning(table.c.id)


def run_insert(stmt, params: dict | None = None) -> int:
    """Run a ``from_select_statement``; as ``insert_from_select``."""
    ids = db.session.execute(stmt, params).scalars().all()
    remember(ids)
    return len(ids)


def remember(ids) -> None:
    """Notices a statement of this transaction recorded (a ``from_select_statement`` run inside
    another statement, say), for the after-commit hand-off."""
    if ids:
        db.session.info.setdefault(ROWS_KEY, []).extend(ids)
