"""Grace before the balance block and "do not block until" (issue 19 section 3): days counted
in BILLING_TZ, across a month end and the operator's midnight; the notices on the way."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from flask import current_app
from sqlalchemy import select

from portal.billing import clock, grace, ledger
from portal.billing.charging import charge
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, Contract, Notice
from tests.builders import subscriber_with_account

ZONE = "Europe/Moscow"


@contextmanager
def wall_clock(instant: datetime):
    """The time is ``instant`` and the operator's zone Moscow: what the scheduler's run sees."""
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return instant.astimezone(tz) if tz else instant.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)

    saved_zone, saved = current_app.config["BILLING_TZ"], clock.datetime
    current_app.config["BILLING_TZ"], clock.datetime = ZONE, Frozen
    try:
        yield
    finally:
        current_app.config["BILLING_TZ"], clock.datetime = saved_zone, saved


def moscow(d: date, hh: int, mm: int) -> datetime:
    return datetime.combine(d, time(hh, mm), ZoneInfo(ZONE))


def short_contract(login: str, owe: str, grace_days: str = "") -> tuple[Contract, Account]:
    """A contract with an active account and no money (and its own grace, if given), then a
    debit of ``owe``: below its limit."""
    _s, c, a = subscriber_with_account(login, paid=None)
    if grace_days:
        grace.save_contract(c, {"grace_days": grace_days, "do_not_block_until": ""}, actor="t")
    ledger.post(c.id, "correction", -Decimal(owe), actor="t", comment="debt")
    db.session.commit()
    return c, a


def status(account: Account) -> str:
    db.session.refresh(account)
    return account.status


def notices(contract: Contract, event: str) -> list[Notice]:
    return db.session.scalars(select(Notice).where(Notice.contract_id == contract.id, Notice.event == event)
                              .order_by(Notice.id)).all()


def test_grace_days_are_counted_in_billing_tz_across_a_month_end_and_midnight(ctx):
    """With one day of grace, a contract that goes short at 23:50 on 31 January (Moscow) is
    warned, not blocked, and blocked by the run at 00:05 on 1 February Moscow time, when UTC
    still says 31 January; a contract with its own 3 days is blocked on 3 February, not before."""
    grace.save_rule({"days": "1"}, actor="t")
    db.session.commit()
    jan31 = date(2025, 1, 31)
    with wall_clock(moscow(jan31, 23, 50)):
        c1, a1 = short_contract("g1", "120.50")
        c3, a3 = short_contract("g3", "75.00", grace_days="3")
        charge(None, actor="t")
        db.session.commit()
        assert (status(a1), status(a3)) == ("active", "active")
        assert c1.below_limit_since == jan31
        w1, w3 = notices(c1, "low_balance"), notices(c3, "low_balance")
        assert [n.data for n in w1] == [{"grace": True, "block_on": "2025-02-01", "amount_to_unblock": "120.50"}]
        assert [n.data for n in w3] == [{"grace": True, "block_on": "2025-02-03", "amount_to_unblock": "75.00"}]
        charge(None, actor="t")  # the same day again: no second warning
        db.session.commit()
        assert len(notices(c1, "low_balance")) == 1

    after_midnight = moscow(date(2025, 2, 1), 0, 5)
    assert after_midnight.astimezone(ZoneInfo("UTC")).date() == jan31  # UTC would still count 31 January
    with wall_clock(after_midnight):
        charge(None, actor="t")
        db.session.commit()
    assert (status(a1), status(a3)) == ("blocked", "active")
    assert a1.reasons == ["balance"]
    [blocked] = notices(c1, "blocked")
    owed = -(c1.balance + c1.credit_limit)
    assert blocked.critical and blocked.data == {"blocked_on": "2025-02-01", "amount_to_unblock": f"{owed:.2f}"}
    assert [n.data["block_on"] for n in notices(c3, "low_balance")] == ["2025-02-03", "2025-02-03"]

    with wall_clock(moscow(date(2025, 2, 2), 12, 0)):
        charge(None, actor="t")
        db.session.commit()
    assert status(a3) == "active"
    with wall_clock(moscow(date(2025, 2, 3), 0, 1)):
        charge(None, actor="t")
        db.session.commit()
    assert status(a3) == "blocked"
    assert len(notices(c3, "blocked")) == 1
    assert len(notices(c1, "blocked")) == 1  # blocked once: the later runs record nothing more


def test_paying_ends_the_grace_and_the_next_shortfall_starts_a_new_one(ctx):
    """Back at zero the contract forgets since when it was short; short again, its grace starts
    afresh from that day."""
    grace.save_rule({"days": "5"}, actor="t")
    db.session.commit()
    with clock.as_of(date(2025, 3, 10)):
        c, a = short_contract("g5", "10.00")
        assert c.below_limit_since == date(2025, 3, 10)
    with clock.as_of(date(2025, 3, 12)):
        ledger.payment(c.id, Decimal("10.00"), actor="t", external_id="p-g5")
        db.session.commit()
        db.session.refresh(c)
        assert c.below_limit_since is None
    with clock.as_of(date(2025, 3, 14)):
        ledger.post(c.id, "correction", -Decimal("1.00"), actor="t")
        db.session.commit()
        db.session.refresh(c)
        assert c.below_limit_since == date(2025, 3, 14)
        assert grace.grace_block_on(c) == date(2025, 3, 19)
    with clock.as_of(date(2025, 3, 18)):
        charge(date(2025, 3, 18), actor="t")
        db.session.commit()
    assert status(a) == "active"
    with clock.as_of(date(2025, 3, 19)):
        charge(date(2025, 3, 19), actor="t")
        db.session.commit()
    assert status(a) == "blocked"


def test_do_not_block_until_a_date_ends_by_itself(ctx):
    """"Do not block until 3 February" keeps a short contract in service through that day (and
    lifts its balance block at once); the run of 4 February blocks it, with nothing cleared by hand."""
    with clock.as_of(date(2025, 2, 1)):
        c, a = short_contract("h1", "50.00")
        assert status(a) == "blocked"  # no grace: blocked at once
        grace.save_contract(c, {"grace_days": "", "do_not_block_until": "2025-02-03"}, actor="t")
        from portal.billing.charging import apply_balance_rule
        apply_balance_rule([c.id], actor="t")
        db.session.commit()
        assert status(a) == "active"
        assert grace.hold_until(c) == date(2025, 2, 3)
    for day in (date(2025, 2, 2), date(2025, 2, 3)):
        charge(day, actor="t")
        db.session.commit()
        assert status(a) == "active"
    charge(date(2025, 2, 4), actor="t")
    db.session.commit()
    assert status(a) == "blocked"
    with clock.as_of(date(2025, 2, 4)):
        assert grace.hold_until(c) is None
    db.session.refresh(c)
    assert c.do_not_block_until == date(2025, 2, 3)  # kept as history; the rule ignores it


@pytest.mark.parametrize("data, field, message", [
    ({"grace_days": "91", "do_not_block_until": ""}, "grace_days", "from 0 to 90 days"),
    ({"grace_days": "x", "do_not_block_until": ""}, "grace_days", "must be a whole number of days"),
    ({"grace_days": "", "do_not_block_until": "2025-13-01"}, "do_not_block_until", "a date (YYYY-MM-DD)"),
    ({"grace_days": "", "do_not_block_until": "2025-01-31"}, "do_not_block_until", "must be today or later"),
])
def test_contract_holds_refuse_bad_input_naming_the_field(ctx, data, field, message):
    """A bad grace or hold-until names its field and changes nothing."""
    with clock.as_of(date(2025, 2, 1)):
        _s, c, _a = subscriber_with_account("hv", paid=None)
        with pytest.raises(BillingError) as e:
            grace.save_contract(c, data, actor="t")
        assert e.value.fields == {field: message}
        db.session.rollback()
        db.session.refresh(c)
        assert (c.grace_days, c.do_not_block_until) == (None, None)
    with pytest.raises(BillingError) as e:
        grace.save_rule({"days": "-1"}, actor="t")
    assert e.value.fields == {"days": "must be a whole number of days"}
