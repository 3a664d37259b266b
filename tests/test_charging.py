"""The charging rules of DESIGN.md, as a subscriber's money shows them."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.billing import clock, ledger
from portal.billing.charging import charge
from portal.extensions import db
from portal.models import Account, AssignedService, Contract, LedgerEntry
from tests.builders import gen_account, gen_contract, gen_service, gen_tariff

SEPT = 9  # September 2026 has 30 days; October 31; February 2027 28


def day(d: int, month: int = SEPT, year: int = 2026) -> date:
    return date(year, month, d)


def balance(contract) -> Decimal:
    db.session.expire_all()
    return db.session.get(Contract, contract.id).balance


def ledger_sum(contract) -> Decimal:
    total = db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.__table__.c.amount), 0))
                              .where(LedgerEntry.__table__.c.contract_id == contract.id))
    return Decimal(total)


def run(d: date):
    r = charge(d, actor="test")
    db.session.commit()
    return r


def funded_contract(amount="10000"):
    c = gen_contract()
    with clock.as_of(date(2026, 8, 1)):
        ledger.payment(c.id, Decimal(amount), actor="test", external_id=f"seed-{c.id}")
    db.session.commit()
    return c


def account_on(d: date, price="300.00", contract=None, **service_kw):
    """An account activated on day d with one service of that price assigned the same day."""
    svc = gen_service(price, **service_kw)
    contract = contract or funded_contract()
    with clock.as_of(d):
        a = gen_account(contract=contract, services=[svc])
    return a, contract


def test_whole_month_in_advance_is_the_price_and_a_second_run_posts_nothing(ctx):
    """If my service was on all month, am I charged exactly its price once, however often the run goes?"""
    a, c = account_on(date(2026, 8, 20))
    before = balance(c)
    first = run(day(1))
    assert before - balance(c) == Decimal("300.00")
    assert first.entries == 1
    again = run(day(1))
    later = run(day(17))
    assert again.entries == 0 and later.entries == 0
    assert before - balance(c) == Decimal("300.00")


def test_activation_mid_month_charges_the_rest_of_the_month_pro_rata(ctx):
    """Activated on the 15th of a 30-day month: do I pay 16/30 of the price?"""
    _a, c = account_on(day(15), price="100.00")
    # 100 x 16 / 30 = 53.333 -> 53.33 (half-up)
    assert Decimal("10000") - balance(c) == Decimal("53.33")
    assert balance(c) == ledger_sum(c)


def test_manager_block_refunds_the_rest_and_unblock_charges_the_days_given_back(ctx):
    """Blocked by a manager on the 20th and unblocked on the 25th: am I charged only the days I could use?"""
    a, c = account_on(date(2026, 8, 10), price="300.00")
    run(day(1))
    with clock.as_of(day(20)):
        acc.block(a, "manager", actor="test")
        db.session.commit()
    # days 20..30 (11 days) refunded: 300 x 19/30 = 190 remain charged
    assert _month_charged(a, day(1)) == Decimal("190.00")
    run(day(22))  # a run while blocked changes nothing
    assert _month_charged(a, day(1)) == Decimal("190.00")
    with clock.as_of(day(25)):
        acc.unblock(a, "manager", actor="test")
        db.session.commit()
    # days 25..30 (6 days) charged again: 300 x 25/30 = 250
    assert _month_charged(a, day(1)) == Decimal("250.00")
    assert balance(c) == ledger_sum(c)


def _month_charged(account, period_start: date) -> Decimal:
    """Net charges minus refunds for the account's services in the month."""
    t = LedgerEntry.__table__.c
    ids = select(AssignedService.id).where(AssignedService.account_id == account.id)
    total = db.session.scalar(select(func.coalesce(func.sum(t.amount), 0))
                              .where(t.assigned_service_id.in_(ids), t.period_start == period_start))
    return -Decimal(total)


def test_balance_block_refunds_nothing_and_the_payment_charges_only_unpaid_days(ctx):
    """If I run out of money, is the month I paid for kept, and does paying not charge me twice?"""
    svc = gen_service("300.00")
    c = gen_contract()
    with clock.as_of(date(2026, 8, 31)):
        ledger.payment(c.id, Decimal("300.00"), actor="test", external_id="p-a")
        db.session.commit()
        a = gen_account(contract=c, services=[svc])
    # August 31st: 300/31 = 9.68 charged; balance 290.32
    run(day(1))  # September: 300 more -> -9.68, blocked by balance
    db.session.expire_all()
    a = db.session.get(Account, a.id)
    assert a.status == "blocked" and a.reasons == ["balance"]
    assert balance(c) == Decimal("-9.68")
    assert _month_charged(a, day(1)) == Decimal("300.00")  # nothing refunded
    run(day(5))
    assert balance(c) == Decimal("-9.68")
    with clock.as_of(day(10)):
        ledger.payment(c.id, Decimal("100.00"), actor="test", external_id="p-b")
        db.session.commit()
    db.session.expire_all()
    a = db.session.get(Account, a.id)
    assert a.status == "active" and a.reasons == []
    assert balance(c) == Decimal("90.32")  # the payment charged nothing: September was paid
    assert balance(c) == ledger_sum(c)


def test_next_month_while_blocked_by_balance_charges_from_the_payment_day(ctx):
    """Blocked by balance over the 1st: does paying on the 10th charge only the 10th to the month's end?"""
    svc = gen_service("300.00")
    c = gen_contract()
    with clock.as_of(day(1)):
        ledger.payment(c.id, Decimal("250.00"), actor="test", external_id="p1")
        db.session.commit()
        a = gen_account(contract=c, services=[svc])  # -50.00: blocked by balance
    db.session.expire_all()
    assert db.session.get(Account, a.id).reasons == ["balance"]
    run(day(1, 10))  # October, blocked: nothing charged
    assert balance(c) == Decimal("-50.00")
    with clock.as_of(day(10, 10)):
        ledger.payment(c.id, Decimal("500.00"), actor="test", external_id="p2")
        db.session.commit()
    # October 10..31 = 22 of 31 days: 300 x 22 / 31 = 212.903 -> 212.90
    assert balance(c) == Decimal("450.00") - Decimal("212.90")
    assert db.session.get(Account, a.id).status == "active"


def test_daily_pro_rata_month_sums_to_exactly_the_price(ctx):
    """Charged day by day, does a whole month still cost exactly the price?"""
    a, c = account_on(date(2026, 8, 15), price="100.00", charge_mode="daily_prorata")
    start = balance(c)
    for d in range(1, 31):
        run(day(d))
        if d == 1:
            assert start - balance(c) == Decimal("3.33")
    assert start - balance(c) == Decimal("100.00")
    assert _month_charged(a, day(1)) == Decimal("100.00")


def test_daily_pro_rata_catches_up_days_a_missed_run_skipped(ctx):
    """If the server was down for two days, are those days still charged once?"""
    a, c = account_on(date(2026, 8, 15), price="100.00", charge_mode="daily_prorata")
    run(day(1))
    run(day(4))  # days 2, 3 and 4
    assert _month_charged(a, day(1)) == Decimal("13.32")


def test_per_day_service_costs_its_price_on_each_billable_day(ctx):
    """A service priced per day: 10 days on, 10 x the price?"""
    a, c = account_on(day(1), price="5.00", charge_period="day", charge_mode="daily_prorata")
    for d in range(2, 11):
        run(day(d))
    assert _month_charged(a, day(1)) == Decimal("50.00")


def test_expiry_ends_the_service_by_itself_and_only_its_days_are_charged(ctx):
    """A service that expires on the 10th: charged for 10 days, then ended without anyone acting?"""
    svc = gen_service("300.00")
    c = funded_contract()
    t = gen_tariff([svc])
    with clock.as_of(date(2026, 8, 31)):
        a = gen_account(contract=c, tariff=t)
        assigned = acc.assign_service(a, {"service_id": svc.id, "ends_on": day(10)}, actor="test")
        db.session.commit()
    run(day(1))
    assert _month_charged(a, day(1)) == Decimal("100.00")
    run(day(11))
    db.session.expire_all()
    assert db.session.get(AssignedService, assigned.id).state == "ended"
    assert _month_charged(a, day(1)) == Decimal("100.00")


def test_ending_a_service_mid_month_refunds_the_rest(ctx):
    """I cancel a service on the 21st: are the 21st..30th refunded?"""
    a, c = account_on(date(2026, 8, 1), price="300.00")
    run(day(1))
    with clock.as_of(day(21)):
        acc.end_service(a.services[0], actor="test")
        db.session.commit()
    assert _month_charged(a, day(1)) == Decimal("200.00")
    run(day(25))
    run(day(1, 10))
    assert _month_charged(a, day(1)) == Decimal("200.00")
    assert _month_charged(a, day(1, 10)) == Decimal("0")


def test_suspended_services_and_disabled_accounts_are_not_charged(ctx):
    """Suspending a service or disabling the account stops charges and refunds the rest?"""
    a, c = account_on(date(2026, 8, 1), price="300.00")
    run(day(1))
    with clock.as_of(day(11)):
        acc.set_service_state(a.services[0], "suspended", actor="test")
        db.session.commit()
    assert _month_charged(a, day(1)) == Decimal("100.00")
    b, c2 = account_on(date(2026, 8, 1), price="300.00")
    run(day(1))
    with clock.as_of(day(16)):
        acc.disable(b, actor="test")
        db.session.commit()
    assert _month_charged(b, day(1)) == Decimal("150.00")
    run(day(1, 10))
    assert _month_charged(a, day(1, 10)) == 0 and _month_charged(b, day(1, 10)) == 0


def test_tariff_fee_is_charged_like_a_service(ctx):
    """A tariff's monthly fee appears on my bill every month?"""
    t = gen_tariff([], monthly_fee="450.00")
    c = funded_contract()
    with clock.as_of(date(2026, 8, 25)):
        a = gen_account(contract=c, tariff=t)
    run(day(1))
    assert _month_charged(a, day(1)) == Decimal("450.00")


def test_balance_rule_payment_lifts_balance_block_but_not_a_managers(ctx):
    """After paying, a manager's block stays and only the balance reason goes?"""
    svc = gen_service("300.00")
    c = gen_contract()
    with clock.as_of(day(1)):
        a = gen_account(contract=c, services=[svc])
        assert db.session.get(Account, a.id).reasons == ["balance"]
        acc.block(db.session.get(Account, a.id), "manager", actor="test")
        db.session.commit()
    with clock.as_of(day(3)):
        ledger.payment(c.id, Decimal("1000"), actor="test", external_id="x")
        db.session.commit()
    db.session.expire_all()
    a = db.session.get(Account, a.id)
    assert a.status == "blocked" and a.reasons == ["manager"]


def test_credit_limit_and_do_not_block(ctx):
    """Within my credit limit I am not blocked; with "do not block" never; otherwise I am."""
    svc = gen_service("300.00")
    credit = gen_contract(credit_limit="500.00")
    never = gen_contract(do_not_block=True)
    plain = gen_contract()
    with clock.as_of(day(1)):
        accounts = [gen_account(contract=x, services=[svc], tariff=None) for x in (credit, never, plain)]
    db.session.expire_all()
    assert [db.session.get(Account, x.id).status for x in accounts] == ["active", "active", "blocked"]
    assert balance(credit) == Decimal("-300.00")


def test_parallel_and_repeated_runs_post_each_charge_once(app, ctx):
    """Two charge runs at once (cron and an operator): is anyone charged twice?"""
    import threading

    svc = gen_service("300.00")
    contracts = []
    with clock.as_of(date(2026, 8, 31)):
        for _ in range(20):
            a, c = account_on(date(2026, 8, 31), contract=funded_contract())
            contracts.append(c)
    errors = []

    def worker():
        try:
            with app.app_context():
                charge(day(1), actor="parallel")
                db.session.commit()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for c in contracts:
        assert balance(c) == ledger_sum(c)
    t = LedgerEntry.__table__.c
    n = db.session.scalar(select(func.count()).where(t.period_start == day(1), t.kind == "charge"))
    assert n == 20
    assert svc  # the first service exists but nobody has it


def test_balance_equals_ledger_sum_under_concurrent_payments_and_runs(app, ctx):
    """With payments arriving during a charge run, does the balance always equal the ledger?"""
    import threading

    accounts = []
    with clock.as_of(date(2026, 8, 31)):
        c = gen_contract()
        for _ in range(5):
            a, _c = account_on(date(2026, 8, 31), price="10.00", contract=c)
            accounts.append(a)
    errors = []
    cid = c.id  # ORM objects belong to this thread's session: threads get ids

    def pay(n):
        try:
            with app.app_context():
                for i in range(10):
                    ledger.payment(cid, Decimal("1.01"), actor="t", external_id=f"{n}-{i}")
                    db.session.commit()
                    # a duplicate of the same payment moves nothing
                    ledger.payment(cid, Decimal("1.01"), actor="t", external_id=f"{n}-{i}")
                    db.session.commit()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def runs():
        try:
            with app.app_context():
                for d in (1, 2, 3):
                    charge(day(d), actor="t")
                    db.session.commit()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(3)] + [threading.Thread(target=runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [repr(e)[:300] for e in errors]
    assert balance(c) == ledger_sum(c)
    payments = db.session.scalar(select(func.count()).where(LedgerEntry.kind == "payment",
                                                            LedgerEntry.contract_id == c.id))
    assert payments == 30


def test_manager_block_on_top_of_a_balance_block_refunds_only_from_that_day(ctx):
    """Blocked by balance on the 1st, then by a manager on the 21st: only the 21st on is refunded?"""
    svc = gen_service("300.00")
    c = gen_contract()
    with clock.as_of(date(2026, 8, 31)):
        ledger.payment(c.id, "9.68", actor="test", external_id="p")
        db.session.commit()
        a = gen_account(contract=c, services=[svc])
    run(day(1))  # September charged in advance, then blocked by balance
    db.session.expire_all()
    assert db.session.get(Account, a.id).reasons == ["balance"]
    with clock.as_of(day(21)):
        acc.block(db.session.get(Account, a.id), "manager", actor="test")
        db.session.commit()
    # days 21..30 refunded: 300 x 20/30 = 200 stay charged
    assert _month_charged(a, day(1)) == Decimal("200.00")
