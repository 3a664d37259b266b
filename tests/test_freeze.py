"""Voluntary freeze (issue 19 section 4): the operator's limits, the frozen days refunded by the
charging rules, platforms told through the outbox, the end on its date by the job, early end,
the notices; on both databases."""
from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import func, select

from jobs.freeze import end_freezes
from portal.billing import charging, clock, freeze, ledger
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, AuditEntry, Contract, Freeze, LedgerEntry, Notice, OutboxEvent
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_subscriber, gen_tariff

CENT = Decimal("0.01")


def part(price: str, days: int, dim: int) -> Decimal:
    """Monthly in advance for ``days`` of a month of ``dim`` days: price x days / dim, half-up."""
    return (Decimal(price) * days / dim).quantize(CENT, rounding=ROUND_HALF_UP)


def set_rule(**kw):
    data = {"enabled": True, "min_days": "7", "max_days": "30", "per_year": "2", "cooldown_days": "14", "fee": "0"}
    data.update(kw)
    r = freeze.save_rule(data, actor="test")
    db.session.commit()
    return r


def subscriber_account(login="anna", price="299.00", paid="1000.00"):
    """An account on a webhook agent (so the outbox speaks) with one monthly service, paid for."""
    s = gen_subscriber(full_name=f"Абонент {login}", cabinet_login=login, cabinet_password="cabinet-pass-1")
    c = gen_contract(s)
    ledger.payment(c.id, Decimal(paid), actor="t", external_id=f"pay-{login}")
    db.session.commit()
    svc = gen_service(price=price, name=f"Интернет {login}")
    a = gen_account(contract=c, tariff=gen_tariff([svc], name=f"Тариф {login}"), agent=gen_agent(platform="webhook"),
                    services=[svc], login=login)
    return c, a


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def events(account_id: int, reason: str) -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.account_id == account_id, OutboxEvent.reason == reason))


def service_total(contract_id: int, period: date) -> Decimal:
    return db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.contract_id == contract_id, LedgerEntry.period_start == period,
        LedgerEntry.assigned_service_id.is_not(None)))


def test_frozen_days_are_refunded_and_the_freeze_ends_by_itself(ctx):
    """Frozen from 10 through 19 March for a fee of 50: the 299.00 month is charged for the other
    21 days only, platforms see the block and its end, the job ends it on 20 March and I get a
    message at each end."""
    set_rule(fee="50")
    with clock.as_of(date(2025, 3, 1)):
        c, a = subscriber_account()
        charging.charge(date(2025, 3, 1), actor="t")
        db.session.commit()
    assert service_total(c.id, date(2025, 3, 1)) == Decimal("-299.00")
    with clock.as_of(date(2025, 3, 10)):
        f, created = freeze.start(a, "2025-03-19", actor="anna")
        db.session.commit()
    assert created and fresh(Account, a.id).reasons == ["subscriber"]
    assert events(a.id, "account.block") == 1
    refund_at_start = part("299.00", 22, 31)  # days 10-31 given back
    assert service_total(c.id, date(2025, 3, 1)) == Decimal("-299.00") + refund_at_start
    fee = db.session.scalar(select(LedgerEntry.amount).filter_by(idempotency_key=f"freeze-fee:{f.id}"))
    assert fee == Decimal("-50.00")

    with clock.as_of(date(2025, 3, 19)):  # its last day: still frozen
        assert end_freezes() == {"unfrozen": 0}
        charging.charge(date(2025, 3, 19), actor="t")
        db.session.commit()
    assert fresh(Account, a.id).status == "blocked"
    with clock.as_of(date(2025, 3, 20)):
        assert end_freezes() == {"unfrozen": 1}
        assert end_freezes() == {"unfrozen": 0}  # a second run ends nothing more
    acc = fresh(Account, a.id)
    assert (acc.status, acc.reasons, acc.status_changed_on) == ("active", [], date(2025, 3, 20))
    assert events(a.id, "account.unblock") == 1
    frozen_days_refund = refund_at_start - part("299.00", 12, 31)  # days 20-31 charged again
    assert service_total(c.id, date(2025, 3, 1)) == Decimal("-299.00") + frozen_days_refund
    balance = Decimal("1000.00") - Decimal("299.00") + frozen_days_refund - Decimal("50.00")
    assert fresh(Contract, c.id).balance == balance
    f = fresh(Freeze, f.id)
    assert (f.status, f.ended_on, f.ended_by) == ("ended", date(2025, 3, 20), "system")
    got = {n.event: n.data for n in db.session.scalars(select(Notice).where(
        Notice.account_id == a.id, Notice.event.in_(("freeze_started", "freeze_ended"))))}
    assert got == {"freeze_started": {"account_login": "anna", "starts_on": f.starts_on.isoformat(),
                                      "frozen_until": "2025-03-19", "fee": "50.00"},
                   "freeze_ended": {"account_login": "anna", "ended_on": "2025-03-20", "early": False}}
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "freeze.end", AuditEntry.object_id == a.id)) == 1


def test_an_early_end_gives_back_the_days_from_that_day(ctx):
    """I come back on 15 March from a freeze meant until the 25th: charged again from the 15th."""
    set_rule()
    with clock.as_of(date(2025, 3, 1)):
        c, a = subscriber_account("boris", price="310.00")
        charging.charge(date(2025, 3, 1), actor="t")
        db.session.commit()
    with clock.as_of(date(2025, 3, 10)):
        freeze.start(a, date(2025, 3, 25), actor="boris")
        db.session.commit()
    with clock.as_of(date(2025, 3, 15)):
        freeze.end(fresh(Account, a.id), actor="boris")
        db.session.commit()
        with pytest.raises(BillingError) as e:
            freeze.end(fresh(Account, a.id), actor="boris")
        assert e.value.fields == {"freeze": "the account is not frozen"}
        db.session.rollback()
    assert fresh(Account, a.id).status == "active"
    assert service_total(c.id, date(2025, 3, 1)) == Decimal("-310.00") + Decimal("50.00")  # 5 days at 10.00
    [n] = db.session.scalars(select(Notice).where(Notice.account_id == a.id, Notice.event == "freeze_ended"))
    assert n.data == {"account_login": "boris", "ended_on": "2025-03-15", "early": True}


def test_the_limits_refuse_naming_the_field(ctx):
    """Too short, too long, in the past (field ``until``); the year's limit and the pause between
    freezes (field ``freeze``); staff are held to the period only."""
    set_rule(min_days="7", max_days="30", per_year="2", cooldown_days="14")
    with clock.as_of(date(2025, 1, 5)):
        _c, a = subscriber_account("vera")

    def refused(day, until, **kw):
        with clock.as_of(day):
            with pytest.raises(BillingError) as e:
                freeze.start(fresh(Account, a.id), until, actor="vera", **kw)
            db.session.rollback()
            return e.value.fields

    assert refused(date(2025, 1, 10), "2025-01-15") == {"until": "shorter than the shortest freeze allowed"}
    assert refused(date(2025, 1, 10), "2025-02-09") == {"until": "longer than the longest freeze allowed"}
    assert refused(date(2025, 1, 10), "2025-01-09") == {"until": "must be today or later"}
    assert refused(date(2025, 1, 10), "10.01.2025") == {"until": "a date (YYYY-MM-DD)"}
    with clock.as_of(date(2025, 1, 10)):
        freeze.start(fresh(Account, a.id), "2025-01-16", actor="vera")  # 7 days: the shortest
        db.session.commit()
    assert refused(date(2025, 1, 12), "2025-01-30") == {"freeze": "the account is frozen already"}
    with clock.as_of(date(2025, 1, 17)):
        end_freezes()
    assert refused(date(2025, 1, 30), "2025-02-10") == {"freeze": "the pause between freezes is not over yet"}
    with clock.as_of(date(2025, 1, 30)):
        assert freeze.offer(fresh(Account, a.id)).available_from == date(2025, 1, 31)
    with clock.as_of(date(2025, 1, 31)):
        freeze.start(fresh(Account, a.id), "2025-03-01", actor="vera")  # 30 days: the longest
        db.session.commit()
    with clock.as_of(date(2025, 3, 2)):
        end_freezes()
    assert refused(date(2025, 6, 1), "2025-06-10") == {"freeze": "the limit of freezes for this year is reached"}
    with clock.as_of(date(2025, 6, 1)):  # staff decide past the yearly limit, not past the period
        with pytest.raises(BillingError) as e:
            freeze.start(fresh(Account, a.id), "2025-08-01", actor="staff", staff=True)
        assert e.value.fields == {"until": "longer than the longest freeze allowed"}
        db.session.rollback()
        freeze.start(fresh(Account, a.id), "2025-06-10", actor="staff", staff=True)
        db.session.commit()
    with clock.as_of(date(2025, 6, 11)):
        end_freezes()
    with clock.as_of(date(2026, 1, 10)):  # a new year
        assert freeze.offer(fresh(Account, a.id)).refusal is None


def test_off_and_not_enough_money_for_the_fee(ctx):
    """Off until an admin enables it; a fee the money does not cover is refused, nothing written."""
    with clock.as_of(date(2025, 4, 1)):
        _c, a = subscriber_account("gleb", paid="310.00", price="300.00")
        with pytest.raises(BillingError) as e:
            freeze.start(a, "2025-04-10", actor="gleb")
        assert e.value.fields == {"freeze": "voluntary freezes are off"}
        db.session.rollback()
        set_rule(fee="20")
        with pytest.raises(BillingError) as e:
            freeze.start(fresh(Account, a.id), "2025-04-10", actor="gleb")
        assert e.value.fields == {"freeze": "not enough money for the fee"}
        db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Freeze)) == 0
    assert fresh(Account, a.id).status == "active"


@pytest.mark.parametrize("data, field, message", [
    ({"min_days": "0"}, "min_days", "from 1 to 366"),
    ({"min_days": "40", "max_days": "30"}, "min_days", "must not be over the maximum"),
    ({"per_year": "x"}, "per_year", "must be a whole number"),
    ({"cooldown_days": ""}, "cooldown_days", "required"),
    ({"fee": "-1"}, "fee", "must not be negative"),
])
def test_bad_rules_name_the_field_and_save_nothing(ctx, data, field, message):
    """A bad limit names its field; the rules stay as they were."""
    with pytest.raises(BillingError) as e:
        set_rule(**data)
    assert e.value.fields[field] == message
    db.session.rollback()
    assert freeze.rule().enabled is False
