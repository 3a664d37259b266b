"""Figures for the staff dashboard: counts, today's money, negative balances, 30 days of
payments against charges. Days are the operator's (BILLING_TZ); cancelled payments are not money in."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import BigInteger, exists, func, or_, select, type_coerce

from ..extensions import db
from ..models import Account, Contract, LedgerEntry, Subscriber, SyncState, from_minor
from . import clock


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=clock.tz())
    return start, start + timedelta(days=1)


def _sums(start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
    """(payments, charges net of refunds) posted in [start, end). A cancelled payment is no
    money received, whenever it was cancelled (its storno, a correction, is not summed either),
    so a day's payments are what reached the operator, as the payments list's "Received"."""
    le = LedgerEntry.__table__.c
    storno = LedgerEntry.__table__.alias("storno")
    amount = type_coerce(le.amount, BigInteger)
    rows = dict(db.session.execute(
        select(le.kind, func.coalesce(func.sum(amount), 0))
        .where(le.created_at >= start, le.created_at < end, le.kind.in_(("payment", "charge", "refund")),
               # (only payments are looked up: the day's many charges skip the probe)
               or_(le.kind != "payment", ~exists().where(storno.c.cancels_id == le.id)))
        .group_by(le.kind)
    ).all())
    payments = rows.get("payment", 0)
    charges = -(rows.get("charge", 0) + rows.get("refund", 0))
    return from_minor(payments), from_minor(charges)


def dashboard(days: int = 30) -> dict:
    today = clock.today()
    by_status = dict(db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all())
    balance = type_coerce(Contract.__table__.c.balance, BigInteger)
    negative = db.session.scalar(select(func.coalesce(func.sum(balance), 0)).where(balance < 0))
    paid_today, charged_today = _sums(*_day_bounds(today))
    chart = []
    for n in range(days - 1, -1, -1):
        day = today - timedelta(days=n)
        payments, charges = _sums(*_day_bounds(day))
        chart.append({"day": day.isoformat(), "payments": str(payments), "charges": str(charges)})
    return {
        "subscribers": db.session.scalar(select(func.count()).select_from(Subscriber)),
        "accounts": {s: by_status.get(s, 0) for s in ("active", "blocked", "disabled", "inactive")},
        "payments_today": paid_today,
        "charges_today": charged_today,
        "negative_balances": from_minor(negative),
        "sync_dead": db.session.scalar(select(func.count()).select_from(SyncState).where(SyncState.state == "dead")),
        "chart": chart,
    }
