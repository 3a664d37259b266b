"""The balance forecast ("your money lasts N more days") and the daily low-balance warnings.

Expected days are worked out here, day by day, from the charging rules as DESIGN.md states
them (not from the code under test): monthly in advance charges the month's price on the 1st;
daily pro rata charges price / days-in-month half-up each day and the remainder on the last.
"""
from __future__ import annotations

import calendar
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import func, select

from portal.billing import clock, forecast, ledger
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Contract, Notice
from tests.builders import gen_account, gen_contract, gen_service

CENT = Decimal("0.01")


def day_cost(mode: str, price: str, d: date, period: str = "month") -> Decimal:
    """What the charge run takes on day ``d`` for a service in force since before it."""
    price = Decimal(price)
    dim = calendar.monthrange(d.year, d.month)[1]
    if mode == "monthly_advance":
        if d.day != 1:
            return Decimal("0")
        return price * dim if period == "day" else price
    if period == "day":
        return price
    daily = (price / dim).quantize(CENT, rounding=ROUND_HALF_UP)
    return price - (dim - 1) * daily if d.day == dim else daily


def expected_days(money: Decimal, today: date, services, horizon: int = 62) -> int | None:
    """Full days from tomorrow that ``money`` covers; None when it covers the horizon."""
    total = Decimal("0")
    for k in range(1, horizon + 1):
        d = today + timedelta(days=k)
        total += sum(day_cost(mode, price, d) for mode, price in services)
        if total > money:
            return k - 1
    return None


def contract_with(services, *, on: date, paid: str, **contract_kw):
    """A contract funded with ``paid`` and an account whose ``services`` ((mode, price), ...)
    were assigned on ``on``, everything charged by the rules as of that day."""
    c = gen_contract(**contract_kw)
    with clock.as_of(on):
        if paid:
            ledger.payment(c.id, Decimal(paid), actor="test", external_id=f"seed-{c.id}")
            db.session.commit()
        svcs = [gen_service(price, charge_mode=mode) for mode, price in services]
        gen_account(contract=c, services=svcs)
    db.session.expire_all()
    return db.session.get(Contract, c.id)


def money(c: Contract) -> Decimal:
    db.session.expire_all()
    c = db.session.get(Contract, c.id)
    return c.balance + c.credit_limit


def low_balance_notices(contract_id=None):
    q = select(Notice).where(Notice.event == "low_balance").order_by(Notice.id)
    if contract_id is not None:
        q = q.where(Notice.contract_id == contract_id)
    db.session.expire_all()
    return list(db.session.scalars(q))


def set_thresholds(text="7, 3, 1", enabled=True):
    forecast.save_settings({"thresholds": text, "enabled": enabled}, actor="test")
    db.session.commit()


def test_daily_service_forecast_runs_across_the_month_end(ctx):
    """With a daily service, does the cabinet's "lasts N days" count each day's real price,
    the month's last day's remainder and the next month's other daily price?"""
    services = [("daily_prorata", "300.00")]
    today = date(2025, 1, 27)
    c = contract_with(services, on=today, paid="80.00")
    n = expected_days(money(c), today, services)
    assert n is not None and today + timedelta(days=n) > date(2025, 1, 31), "the case must cross the month end"
    f = forecast.forecast([c.id], today)[c.id]
    assert f.days == n
    assert f.until == today + timedelta(days=n)
    assert f.charge_on == today + timedelta(days=n + 1)
    assert f.charge == day_cost("daily_prorata", "300.00", f.charge_on)


def test_monthly_service_runs_out_on_the_first(ctx):
    """With a monthly service paid for this month, does the money last exactly to the month's end
    when it does not cover next month's price, and what is short?"""
    services = [("monthly_advance", "450.00")]
    today = date(2025, 1, 27)
    c = contract_with(services, on=today, paid="500.00")
    m = money(c)
    assert m == Decimal("500.00") - (Decimal("450.00") * 5 / 31).quantize(CENT, rounding=ROUND_HALF_UP)
    f = forecast.forecast([c.id], today)[c.id]
    assert f.days == expected_days(m, today, services) == 4
    assert (f.until, f.charge_on, f.charge, f.short) == (date(2025, 1, 31), date(2025, 2, 1), Decimal("450.00"),
                                                        Decimal("450.00") - m)


def test_mixed_services_and_a_credit_limit(ctx):
    """Do a monthly and a daily service together, with a credit limit, give the day the
    running total passes the money?"""
    services = [("monthly_advance", "299.00"), ("daily_prorata", "600.00")]
    today = date(2025, 2, 20)
    c = contract_with(services, on=today, paid="400.00", credit_limit="150.00")
    n = expected_days(money(c), today, services)
    assert n is not None
    assert forecast.forecast([c.id], today)[c.id].days == n


def test_warning_at_the_smallest_threshold_with_the_day_it_runs_out(ctx):
    """Is a subscriber whose money lasts 4 more days warned once, at the 7-day threshold, with
    the figures a message needs?"""
    set_thresholds("7, 3, 1")
    services = [("monthly_advance", "450.00")]
    today = date(2025, 1, 27)
    c = contract_with(services, on=today, paid="500.00")
    assert forecast.warn(today) == 1
    db.session.commit()
    [n] = low_balance_notices(c.id)
    m = money(c)
    assert n.subscriber_id == c.subscriber_id and not n.critical
    assert n.data == {"days_left": 4, "threshold": 7, "runs_out_on": "2025-01-31", "charge_on": "2025-02-01",
                      "charge": "450.00", "suggested_payment": str(Decimal("450.00") - m), "balance": str(c.balance),
                      "credit_limit": "0.00"}
    assert n.dedup_key == f"low_balance:{c.id}:7:2025-02-01"


def test_thresholds_warn_once_each_across_reruns_and_days(ctx):
    """Running the pass again the same day, or the next days above the next threshold, warns
    nobody twice; crossing the 3-day and then the 1-day threshold warns once more each."""
    set_thresholds("7, 3, 1")
    services = [("monthly_advance", "450.00")]
    c = contract_with(services, on=date(2025, 1, 23), paid="450.00")  # runs out on Feb 1
    counts = []
    for d in range(24, 32):
        today = date(2025, 1, d)
        counts.append(forecast.warn(today) + forecast.warn(today))
        db.session.commit()
    # Jan 24: 7 days left -> 7; 25..27: 6..4 -> nothing; 28: 3 -> 3; 29: nothing; 30: 1 -> 1; 31: 0 days
    # left, still the 1-day threshold for the same day -> nothing
    assert counts == [1, 0, 0, 0, 1, 0, 1, 0]
    assert [n.data["threshold"] for n in low_balance_notices(c.id)] == [7, 3, 1]
    assert [n.data["days_left"] for n in low_balance_notices(c.id)] == [7, 3, 1]


def test_no_warning_when_the_money_covers(ctx):
    """Is a subscriber whose balance, with the payments already received, covers the horizon
    left alone, and warned no more once a payment arrives?"""
    set_thresholds("7, 3, 1")
    services = [("monthly_advance", "450.00")]
    today = date(2025, 1, 27)
    rich = contract_with(services, on=today, paid="2000.00")
    poor = contract_with(services, on=today, paid="500.00")
    with clock.as_of(today):
        ledger.payment(poor.id, Decimal("30.00"), actor="test", external_id="top-up")
    db.session.commit()
    assert forecast.warn(today) == 0
    assert low_balance_notices() == []
    assert rich.id not in forecast.forecast([rich.id, poor.id], today, horizon=8)


def test_no_warning_without_charges_or_with_do_not_block(ctx):
    """Contracts with nothing to pay for, or that are never blocked, hear no low-balance warning."""
    set_thresholds("7, 3, 1")
    today = date(2025, 1, 27)
    empty = gen_contract(credit_limit="0")
    with clock.as_of(today):
        gen_account(contract=empty)  # an active account with no service
    never = contract_with([("daily_prorata", "3000.00")], on=today, paid="10.00", do_not_block=True)
    assert forecast.warn(today) == 0
    assert forecast.forecast([empty.id, never.id], today) == {}


def test_no_forecast_warning_below_the_limit(ctx):
    """A contract already below its credit limit (in grace, its accounts still on) hears of the
    coming block from the grace rule, not "your money lasts 0 days" every day."""
    set_thresholds("7, 3, 1")
    today = date(2025, 1, 27)
    c = contract_with([("daily_prorata", "300.00")], on=today, paid="20.00")
    with clock.as_of(today):
        ledger.post(c.id, "charge", Decimal("-30.00"), actor="test", comment="fee", apply_rules=False)
    db.session.commit()
    assert money(c) < 0
    assert forecast.warn(today) == 0
    assert forecast.forecast([c.id], today) == {}


def test_the_day_is_the_billing_time_zone_day(ctx):
    """At 23:30 in Moscow on Jan 31 (20:30 UTC) the money runs out tomorrow; at 00:30 on Feb 1
    (21:30 UTC) it is a new month already charged, so no warning then."""
    set_thresholds("7, 3, 1")
    c = contract_with([("monthly_advance", "450.00")], on=date(2025, 1, 27), paid="500.00")
    assert forecast.warn(now=datetime(2025, 1, 31, 21, 30, tzinfo=UTC)) == 0
    assert forecast.warn(now=datetime(2025, 1, 31, 20, 30, tzinfo=UTC)) == 1
    db.session.commit()
    [n] = low_balance_notices(c.id)
    assert (n.data["days_left"], n.data["threshold"], n.data["charge_on"]) == (0, 1, "2025-02-01")


def test_parallel_passes_record_each_warning_once(app):
    """Two warning passes started together (two workers) record each warning once."""
    with app.app_context():
        set_thresholds("7, 3, 1")
        today = date(2025, 1, 27)
        ids = [contract_with([("monthly_advance", "450.00")], on=today, paid="500.00").id for _ in range(3)]
        db.session.remove()
    barrier = threading.Barrier(2)
    errors = []

    def run():
        with app.app_context():
            try:
                barrier.wait()
                forecast.warn(today)
                db.session.commit()
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.app_context():
        rows = db.session.execute(select(Notice.contract_id, func.count()).where(Notice.event == "low_balance")
                                  .group_by(Notice.contract_id)).all()
        assert sorted(rows) == [(i, 1) for i in ids]


@pytest.mark.parametrize("raw, error", [("", "required"), ("0, 3", "each from 1 to 31 days"),
                                        ("7, 7", "each day only once"), ("a, 3", "whole numbers"),
                                        ("1,2,3,4,5,6", "at most 5 thresholds"), ("40", "each from 1 to 31")])
def test_settings_refuse_bad_thresholds(ctx, raw, error):
    """Does a bad threshold list come back as a clear error on the field, saving nothing?"""
    with pytest.raises(BillingError) as e:
        forecast.save_settings({"thresholds": raw, "enabled": True}, actor="test")
    assert error in e.value.fields["thresholds"]
    db.session.rollback()
    assert forecast.thresholds_of(forecast.settings()) == [1, 3, 7]


def test_settings_off_warn_nobody(ctx):
    """With the warnings switched off, the pass records nothing."""
    set_thresholds("5", enabled=False)
    contract_with([("monthly_advance", "450.00")], on=date(2025, 1, 27), paid="500.00")
    assert forecast.warn(date(2025, 1, 27)) == 0
    assert forecast.thresholds_of(forecast.settings()) == [5]


def test_the_daily_job_warns_and_commits(ctx):
    """The scheduled job runs the pass for the billing day and keeps what it recorded."""
    from jobs.forecast import warn_low_balance, warn_promised_expiring

    set_thresholds("7, 3, 1")
    c = contract_with([("monthly_advance", "450.00")], on=date(2025, 1, 27), paid="500.00")
    with clock.as_of(date(2025, 1, 27)):
        assert warn_low_balance() == {"recorded": 1}
        assert warn_low_balance() == {"recorded": 0}
        assert warn_promised_expiring() == {"recorded": 0}
    db.session.rollback()  # committed by the job: still there
    assert [n.data["days_left"] for n in low_balance_notices(c.id)] == [4]
