"""What a change costs before it is made: the quote the upsale, the cabinet and staff see is
what the change then posts, for any price, mode, day and month length."""
from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.billing import clock
from portal.billing.quotes import quote
from portal.extensions import db
from portal.models import LedgerEntry
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_tariff

# a month of each length: 28 (2026-02), 29 (2028-02), 30 (2026-04), 31 (2026-01)
MONTHS = [(2026, 2), (2028, 2), (2026, 4), (2026, 1)]
KINDS = [("month", "monthly_advance"), ("month", "daily_prorata"), ("day", "monthly_advance"),
         ("day", "daily_prorata")]


def posted(assigned_id: int) -> Decimal:
    """What the ledger holds for one assigned service (negative: charged). Signed, because the
    daily pro rata rule's last day can come out negative for prices of a few roubles."""
    return Decimal(db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.assigned_service_id == assigned_id)))


_ids = itertools.count(1)


def services(price_a: int, price_b: int, kind_a, kind_b):
    """Two basic TV services of one platform (so the second replaces the first)."""
    n = next(_ids)
    a = gen_service(f"{Decimal(price_a) / 100:.2f}", charge_period=kind_a[0], charge_mode=kind_a[1],
                    platform="smotreshka", external_id=f"a{n}", iptv_kind="basic")
    b = gen_service(f"{Decimal(price_b) / 100:.2f}", charge_period=kind_b[0], charge_mode=kind_b[1],
                    platform="smotreshka", external_id=f"b{n}", iptv_kind="basic")
    return a, b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(month=st.sampled_from(MONTHS), first=st.integers(1, 31), later=st.integers(0, 30),
       price_a=st.integers(1, 2_000_000), price_b=st.integers(1, 2_000_000),
       kind_a=st.sampled_from(KINDS), kind_b=st.sampled_from(KINDS),
       action=st.sampled_from(["assign", "end", "replace"]), blocked=st.booleans(), trial=st.integers(0, 40))
def test_the_quote_is_what_the_change_posts(ctx, month, first, later, price_a, price_b, kind_a, kind_b, action,
                                           blocked, trial):
    """Does the preview's "charged today" and "given back" equal the money the change moves, also
    on a blocked account and for a service that starts after a trial (maybe next month)?"""
    year, mon = month
    dim = clock.days_in_month(date(year, mon, 1))
    d0 = date(year, mon, min(first, dim))
    d1 = date(year, mon, min(d0.day + later, dim))
    a_service, b_service = services(price_a, price_b, kind_a, kind_b)
    with clock.as_of(d0):
        contract = gen_contract(do_not_block=True)
        account = gen_account(contract=contract, tariff=gen_tariff([a_service, b_service], kind="services"),
                              agent=gen_agent("services"))
        if action == "assign":
            if blocked:
                acc.block(account, "manager", actor="test")
                db.session.commit()
            starts = d0 + timedelta(days=trial)
            q = quote(account, add=a_service, starts_on=starts)
            held = acc.assign_service(account, {"service_id": a_service.id, "starts_on": starts}, actor="test")
            db.session.commit()
            assert (-posted(held.id), q.refund) == (q.charge, 0)
            if blocked or trial:
                assert q.charge == 0  # not billable today: charged when it becomes so
            return
        held = acc.assign_service(account, {"service_id": a_service.id}, actor="test")
        db.session.commit()
        paid = posted(held.id)
    with clock.as_of(d1):
        if blocked:  # a manager's block refunds the rest of the month; ending then gives nothing more
            acc.block(account, "manager", actor="test")
            db.session.commit()
            paid = posted(held.id)
        if action == "end":
            q = quote(account, remove=held)
            acc.end_service(held, actor="test")
            db.session.commit()
            assert (q.charge, posted(held.id) - paid) == (0, q.refund)
        else:  # a second basic replaces the first
            q = quote(account, add=b_service)
            assert q.ends == [held]
            new = acc.assign_service(account, {"service_id": b_service.id}, actor="test")
            db.session.commit()
            assert (-posted(new.id), posted(held.id) - paid) == (q.charge, q.refund)


def test_the_rest_of_a_month_in_advance_worked_out_by_hand(ctx):
    """A 300 ₽ monthly service taken on 17 November (30 days): 14 days are due, 140 ₽."""
    service = gen_service("300.00")
    account = gen_account(tariff=gen_tariff([service]), contract=gen_contract(do_not_block=True))
    with clock.as_of(date(2026, 11, 17)):
        expected = (Decimal("300.00") * 14 / 30).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert quote(account, add=service).charge == expected == Decimal("140.00")
