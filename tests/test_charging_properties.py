"""The charging rules of DESIGN.md for any price, any month length (28, 29, 30, 31 days: February
in a leap year, in a common year and in 2100, a century that is not leap) and any start day, as the
real charge run posts them to the database; and a charge run at midnight in BILLING_TZ charges
the day the operator's calendar shows, in Moscow and in Vladivostok.

Expected figures are worked out here from the rules' text, not from portal code. Hypothesis is
derandomized (the same examples on every run, so CI is stable) and keeps to a few examples,
because each one runs the charge run against the database up to a month of times.
(tests/test_quotes.py checks that a quote equals what a change posts; this file checks the
charge run against the rules themselves.)"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.billing import clock, ledger
from portal.billing.charging import charge
from portal.extensions import db
from portal.models import LedgerEntry
from tests.builders import gen_account, gen_contract, gen_service, gen_tariff

# February 2027 (28 days), 2028 (29, leap), 2100 (28: a century, not leap), April (30), December (31)
MONTHS = [(2027, 2), (2028, 2), (2100, 2), (2026, 4), (2026, 12)]
CENT = Decimal("0.01")
PRICES = st.integers(1, 5_000_000).map(lambda k: Decimal(k) / 100)  # 0.01 .. 50 000.00
FEW = settings(max_examples=10, derandomize=True, database=None, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_ids = itertools.count(1)


def days_in(year: int, month: int) -> int:
    return ((date(year + month // 12, month % 12 + 1, 1)) - date(year, month, 1)).days


def daily_rule(price: Decimal, dim: int, day: int) -> Decimal:
    """DESIGN.md: price / days, half-up to the kopeck; the last day takes what is left."""
    each = (price / dim).quantize(CENT, rounding=ROUND_HALF_UP)
    return price - (dim - 1) * each if day == dim else each


def in_advance_rule(price: Decimal, dim: int, first_day: int) -> Decimal:
    """DESIGN.md: price x (days from the first billable day to the month's end) / days, half-up."""
    return (price * (dim - first_day + 1) / dim).quantize(CENT, rounding=ROUND_HALF_UP)


def posted(assigned_id: int, period: date) -> Decimal:
    """What the ledger charged for one service in one month (charges are negative: so, minus)."""
    total = db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.assigned_service_id == assigned_id, LedgerEntry.period_start == period))
    return -Decimal(total)


def subscribed(year: int, month: int, prices_and_starts, mode: str) -> list[int]:
    """One funded, active account with a service per (price, start day of the month), each
    assigned the day before the month begins and in force from its start day; their ids."""
    eve = date(year, month, 1) - timedelta(days=1)
    n = next(_ids)
    services = [gen_service(str(price), charge_mode=mode, name=f"prop{n}-{i}")
                for i, (price, _start) in enumerate(prices_and_starts)]
    with clock.as_of(eve):
        contract = gen_contract()
        ledger.payment(contract.id, Decimal("10000000"), actor="test", external_id=f"prop-seed-{n}")
        account = gen_account(contract=contract, tariff=gen_tariff(services))
        ids = [acc.assign_service(account, {"service_id": s.id, "starts_on": date(year, month, start)},
                                  actor="test").id
               for s, (_price, start) in zip(services, prices_and_starts)]
    db.session.commit()
    return ids


@FEW
@given(month=st.sampled_from(MONTHS), price=PRICES, start=st.integers(1, 31))
def test_daily_pro_rata_posts_the_rules_amount_each_day_and_a_whole_month_is_the_price(ctx, month, price, start):
    """Charged day by day by the nightly run, does each day cost price/days (the last day the
    remainder), a service from the 1st cost exactly its price, and one from day N the sum of its
    days?"""
    year, mon = month
    dim = days_in(year, mon)
    start = min(start, dim)
    period = date(year, mon, 1)
    whole, part = subscribed(year, mon, [(price, 1), (price, start)], "daily_prorata")
    for day in range(1, dim + 1):
        before = posted(whole, period), posted(part, period)
        charge(date(year, mon, day), actor="test")
        db.session.commit()
        assert posted(whole, period) - before[0] == daily_rule(price, dim, day), f"day {day} of {dim}"
        assert posted(part, period) - before[1] == (daily_rule(price, dim, day) if day >= start else 0)
    assert posted(whole, period) == price
    assert posted(part, period) == sum(daily_rule(price, dim, d) for d in range(start, dim + 1))


@FEW
@given(month=st.sampled_from(MONTHS), price=PRICES, start=st.integers(1, 31), late=st.integers(0, 30))
def test_monthly_in_advance_first_charge_is_the_rest_of_the_month_pro_rata(ctx, month, price, start, late):
    """A service in force from day N: does the first run on or after that day (maybe days late)
    charge price x days-left / days, half-up; and later runs that month nothing more?"""
    year, mon = month
    dim = days_in(year, mon)
    start = min(start, dim)
    run_day = min(start + late, dim)
    period = date(year, mon, 1)
    (svc,) = subscribed(year, mon, [(price, start)], "monthly_advance")
    if start > 1:
        charge(date(year, mon, start - 1), actor="test")  # the day before: not yet in force
        db.session.commit()
        assert posted(svc, period) == 0
    run = charge(date(year, mon, run_day), actor="test")
    db.session.commit()
    assert posted(svc, period) == in_advance_rule(price, dim, start)
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.assigned_service_id == svc, LedgerEntry.charge_run_id == run.id)) == 1
    charge(date(year, mon, dim), actor="test")
    db.session.commit()
    assert posted(svc, period) == in_advance_rule(price, dim, start)


@contextmanager
def wall_clock(instant: datetime, zone: str):
    """The operator's time zone is ``zone`` and the time is ``instant``: what a charge run started
    by the scheduler at that moment sees (portal.billing.clock reads datetime.now(BILLING_TZ))."""
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return instant.astimezone(tz) if tz else instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)

    saved_zone, saved_datetime = current_app.config["BILLING_TZ"], clock.datetime
    current_app.config["BILLING_TZ"], clock.datetime = zone, Frozen
    try:
        yield
    finally:
        current_app.config["BILLING_TZ"], clock.datetime = saved_zone, saved_datetime


@settings(max_examples=12, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(month=st.sampled_from(MONTHS), zone=st.sampled_from(["Europe/Moscow", "Asia/Vladivostok"]),
       price=PRICES, mode=st.sampled_from(["monthly_advance", "daily_prorata"]))
def test_a_run_at_midnight_in_billing_tz_charges_the_operators_day(ctx, month, zone, price, mode):
    """The run starts at 23:59:59 on the month's last day and again at 00:00:00 on the next
    month's first, operator's time (UTC is still on the day before in both zones): does the
    first charge the last day of this month and the second open the next month?"""
    year, mon = month
    dim = days_in(year, mon)
    tz = ZoneInfo(zone)
    last = date(year, mon, dim)
    first_next = last + timedelta(days=1)
    this_period, next_period = date(year, mon, 1), first_next
    (svc,) = subscribed(year, mon, [(price, 1)], mode)
    charge(last - timedelta(days=1), actor="test")  # the run of the night before: up to day dim - 1
    db.session.commit()

    before_midnight = datetime.combine(last, time(23, 59, 59), tz)
    with wall_clock(before_midnight, zone):
        run = charge(actor="test")
    db.session.commit()
    assert run.run_date == last
    assert posted(svc, this_period) == price  # the month whole, its last day (or all of it) included
    assert posted(svc, next_period) == 0

    midnight = datetime.combine(first_next, time(0, 0, 0), tz)
    assert midnight.astimezone(ZoneInfo("UTC")).date() == last  # UTC would still say the old month
    with wall_clock(midnight, zone):
        run = charge(actor="test")
    db.session.commit()
    assert run.run_date == first_next
    next_dim = days_in(first_next.year, first_next.month)
    expected = price if mode == "monthly_advance" else daily_rule(price, next_dim, 1)
    assert posted(svc, next_period) == expected
    assert posted(svc, this_period) == price
