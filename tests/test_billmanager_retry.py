"""BILLmanager off the happy path (issue 14): a seller that is down or short of money while an
order waits, renewals that time out or would go below the minimum, parallel orders, and the
handlers a tariff lists. The emulator over real HTTP, the real worker and scheduler."""
from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from portal.billing import clock, ledger
from portal.billing.charging import charge
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, BmService, BmTariff, Contract, LedgerEntry, Task
from portal.platforms.billmanager import handlers, importer, orders
from tests.billmanager_fixtures import SELLER_LOGIN, WORKER_ENV, imported_tariff, make_handler
from tests.builders import gen_account, gen_contract
from tests.platform_fixtures import wait_for

# retries due after a second or two, swept every second
RETRY_ENV = {**WORKER_ENV, "SYNC_BACKOFF_BASE": "1", "SYNC_BACKOFF_MAX": "2"}


def _account(balance="1000.00"):
    c = gen_contract()
    ledger.payment(c.id, Decimal(balance), actor="test", external_id=f"p{c.id}")
    db.session.commit()
    return gen_account(contract=c)


def _order(account, tariff):
    svc = orders.place_order(account, tariff, actor="test")
    db.session.commit()
    orders.enqueue_order(svc.id)
    return svc.id


def _svc(svc_id) -> BmService:
    return db.session.get(BmService, svc_id)


def _task(svc_id) -> Task | None:
    return db.session.scalar(select(Task).filter_by(object_type="bm_service", object_id=svc_id)
                             .order_by(Task.id.desc()).limit(1))


def _order_calls(seller) -> int:
    return sum(1 for c in seller.calls if c["func"].endswith(".order.param") and c["params"].get("sok"))


def _both(processes):
    processes.start("jobs.worker", **RETRY_ENV)
    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)


def test_an_order_placed_while_the_seller_is_down_is_ordered_once_when_it_returns(ctx, seller, processes):
    """The seller is unreachable when a subscriber orders: they are charged at once, the order
    waits with "the balance cannot be read" (not "top up"), and once the seller is back it is
    ordered by itself, once, and the task closes."""
    _both(processes)
    t = imported_tariff(make_handler(seller), price="450.00")
    seller.stop()
    a = _account()
    svc_id = _order(a, t)
    paid = Decimal("1000.00") - db.session.get(Contract, a.contract_id).balance
    assert paid > 0  # charged here at once
    wait_for(lambda: _svc(svc_id).wait_reason, what="the first attempt")
    svc = _svc(svc_id)
    assert (svc.state, svc.wait_reason) == ("pending", "balance_unknown") and svc.retry_at is not None
    task = _task(svc_id)
    assert task.state == "open" and "cannot be read" in task.title and "top up" not in task.title
    seller.start()  # the same port
    wait_for(lambda: _svc(svc_id).state == "ordered", timeout=40, what="the order once the seller is back")
    assert _order_calls(seller) == 1 and len(seller.services) == 1
    assert seller.balance(SELLER_LOGIN) == Decimal("700.00")  # paid there once
    assert db.session.get(Task, task.id).state == "done"
    svc = _svc(svc_id)
    assert (svc.wait_reason, svc.attempts, svc.retry_at) == (None, 0, None)
    assert Decimal("1000.00") - db.session.get(Contract, a.contract_id).balance == paid  # nothing more here


def test_a_seller_answering_502_before_the_order_call_is_retried_without_a_click(ctx, seller, processes):
    """Every call answers 502 for a while (a proxy in front of the seller): the order waits and
    goes through once the seller answers again."""
    _both(processes)
    t = imported_tariff(make_handler(seller))
    seller.fail("*", "down", times=None)
    svc_id = _order(_account(), t)
    wait_for(lambda: (_svc(svc_id).attempts or 0) >= 2, what="two failed attempts")
    assert _svc(svc_id).state == "pending" and "502" in _svc(svc_id).last_error and _order_calls(seller) == 0
    seller.heal()
    wait_for(lambda: _svc(svc_id).state == "ordered", timeout=40, what="the order after the 502s")
    assert _order_calls(seller) == 1 and len(seller.services) == 1


def test_a_502_on_the_order_call_itself_is_looked_for_never_resent(ctx, seller, processes):
    """The order call answers 502 (it may have reached the seller): the job looks, finds
    nothing, flags the order for a person; the retry sweep does not send it again."""
    _both(processes)
    t = imported_tariff(make_handler(seller))
    seller.fail("v2.vds.order.param", "down")
    svc_id = _order(_account(), t)
    wait_for(lambda: _svc(svc_id).state == "attention", what="the flag")
    assert orders.retry_due() == 0
    time.sleep(3)  # a few sweeps: had one re-sent the order, the seller (healed) would now hold it
    assert not seller.services and seller.balance(SELLER_LOGIN) == Decimal("1000.00")
    assert _svc(svc_id).state == "attention" and _task(svc_id).state == "open"


def test_a_short_balance_says_top_up_and_the_order_goes_once_it_is_topped_up(ctx, seller, processes):
    """350 ₽ on the selling account, 300 ₽ cost and 100 ₽ to keep: the task says "top up";
    after the top-up the order goes through by itself."""
    _both(processes)
    seller.set_balance(SELLER_LOGIN, "350.00")
    t = imported_tariff(make_handler(seller, min_balance="100.00"))
    svc_id = _order(_account(), t)
    wait_for(lambda: _svc(svc_id).wait_reason, what="the balance check")
    assert _svc(svc_id).wait_reason == "balance_low" and "top up" in _task(svc_id).title
    assert "350.00" in _svc(svc_id).last_error and not seller.services
    seller.set_balance(SELLER_LOGIN, "1000.00")
    wait_for(lambda: _svc(svc_id).state == "ordered", timeout=40, what="the order after the top-up")
    assert seller.balance(SELLER_LOGIN) == Decimal("700.00") and _task(svc_id).state == "done"


def test_a_refusal_waits_for_staff_and_is_not_retried(ctx, seller):
    """The seller refuses the order (a wrong product setting): it waits for a person; the sweep
    leaves it alone."""
    t = imported_tariff(make_handler(seller))
    seller.fail("v2.vds.order.param", "access", times=None)
    svc_id = orders.place_order(_account(), t, actor="test").id
    db.session.commit()
    assert orders.order_service(svc_id) == "pending"
    svc = _svc(svc_id)
    assert svc.wait_reason == "refused" and svc.retry_at is None and "refused" in _task(svc_id).title
    assert orders.retry_due() == 0


def test_two_parallel_orders_on_money_for_one_pay_once(app, ctx, seller):
    """Two tabs order a 450 ₽ VDS at once on a contract holding 500 ₽: one order, one charge,
    the other is told to top up."""
    t = imported_tariff(make_handler(seller), price="450.00")
    a = _account("500.00")
    account_id, tariff_id, contract_id = a.id, t.id, a.contract_id
    start, results = threading.Barrier(2), []

    def tab():
        with app.app_context():
            start.wait()
            try:
                orders.place_order(db.session.get(Account, account_id), db.session.get(BmTariff, tariff_id),
                                   actor="test")
                db.session.commit()
                results.append("ordered")
            except BillingError as e:
                db.session.rollback()
                results.append(e.fields.get("tariff_id"))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=tab) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results, key=str) == ["not enough money on the contract: top it up first", "ordered"]
    assert db.session.scalar(select(func.count()).select_from(BmService).where(BmService.account_id == account_id)) == 1
    charges = db.session.scalars(select(LedgerEntry).where(LedgerEntry.contract_id == contract_id,
                                                           LedgerEntry.amount < 0)).all()
    assert len(charges) == 1


def _ordered_service(seller, app, min_balance="100.00"):
    t = imported_tariff(make_handler(seller, min_balance=min_balance))
    svc_id = orders.place_order(_account("5000.00"), t, actor="test").id
    db.session.commit()
    assert orders.order_service(svc_id) == "ordered"
    first = clock.month_start(clock.today())
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    charge(nxt)
    db.session.commit()
    return svc_id, nxt


def _prolongs(seller) -> int:
    return sum(1 for c in seller.calls if c["func"] == "service.prolong")


def test_flask_billmanager_renew_with_a_date_renews_once(app, ctx, seller, monkeypatch):
    """`flask billmanager renew --date` renews the charged month on the seller; a second run
    renews nothing."""
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    svc_id, nxt = _ordered_service(seller, app)
    runner = app.test_cli_runner()
    out = runner.invoke(args=["billmanager", "renew", "--date", nxt.isoformat()])
    assert out.exit_code == 0 and "renewed 1" in out.output
    out = runner.invoke(args=["billmanager", "renew", "--date", nxt.isoformat()])
    assert "renewed 0" in out.output and _prolongs(seller) == 1
    assert runner.invoke(args=["billmanager", "renew", "--date", "tomorrow"]).exit_code != 0


def test_a_renewal_that_times_out_is_never_resent(app, ctx, seller, monkeypatch):
    """The seller renews but answers too late, and then its list is a DDoS guard's page: the
    renewal is flagged for a check with a task, and neither this run nor the next sends it
    again."""
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_TIMEOUT", 0.5)
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    svc_id, nxt = _ordered_service(seller, app)
    seller.fail("service.prolong", "timeout")
    seller.fail("vds", "html", times=None, skip=1)  # the list before the renewal answers, later ones not
    assert orders.renew_due(nxt) == {"renewed": 0, "waiting": 0, "unknown": 1}
    task = db.session.scalar(select(Task).filter_by(key=f"billmanager:renew:{svc_id}"))
    assert task.state == "open" and "unknown" in _svc(svc_id).last_error
    seller.heal()
    assert orders.renew_due(nxt) == {"renewed": 0, "waiting": 0, "unknown": 0}
    assert _prolongs(seller) == 1


def test_a_renewal_whose_answer_is_late_is_confirmed_by_the_expiry_not_resent(app, ctx, seller, monkeypatch):
    """The seller renews but answers too late: the job reads the list, sees the later expiry
    and counts it renewed; one renewal, paid once."""
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_TIMEOUT", 0.5)
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    svc_id, nxt = _ordered_service(seller, app)
    before = seller.balance(SELLER_LOGIN)
    seller.fail("service.prolong", "timeout")
    assert orders.renew_due(nxt) == {"renewed": 1, "waiting": 0, "unknown": 0}
    assert orders.renew_due(nxt)["renewed"] == 0
    assert _prolongs(seller) == 1 and seller.balance(SELLER_LOGIN) == before - Decimal("300.00")


def test_a_renewal_below_the_minimum_balance_waits_with_a_task(app, ctx, seller, monkeypatch):
    """After the order the selling account has 700 ₽; the handler must keep 500 and the month
    costs 300: the renewal waits with a task and sends nothing; after a top-up it renews."""
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    svc_id, nxt = _ordered_service(seller, app, min_balance="500.00")
    assert seller.balance(SELLER_LOGIN) == Decimal("700.00")
    assert orders.renew_due(nxt) == {"renewed": 0, "waiting": 1, "unknown": 0}
    assert _prolongs(seller) == 0
    task = db.session.scalar(select(Task).filter_by(key=f"billmanager:renew:{svc_id}"))
    assert task.state == "open" and "700.00" in task.body
    seller.set_balance(SELLER_LOGIN, "2000.00")
    assert orders.renew_due(nxt)["renewed"] == 1
    assert db.session.get(Task, task.id).state == "done" and seller.balance(SELLER_LOGIN) == Decimal("1700.00")


def test_a_tariff_orders_only_through_its_handlers_in_their_order(app, ctx, seller, monkeypatch):
    """Two handlers sell VDS on one seller: the tariff lists only the second; an older third
    one is not listed. The order goes through the listed one; a handler of another product
    type is refused for the list."""
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    seller.add_account("second@example.com", "Second-Pa55", "1000.00")
    first = make_handler(seller, name="VDS 1")
    second = make_handler(seller, name="VDS 2", username="second@example.com", password="Second-Pa55")
    make_handler(seller, name="VDS old", sort=-5)  # lower sort: the implicit rule would have tried it first
    other = make_handler(seller, name="Хостинг", itemtype="vhost")
    t = imported_tariff(first)
    assert [h.name for h in handlers.tariff_handlers(t)] == ["VDS 1"]
    try:
        importer.update_tariff(t, {"handler_ids": [second.id, other.id]}, actor="test")
        raise AssertionError("a vhost handler was accepted for a VDS tariff")
    except BillingError as e:
        assert "handler_ids" in e.fields
    db.session.rollback()
    importer.update_tariff(db.session.get(BmTariff, t.id), {"handler_ids": [second.id]}, actor="test")
    db.session.commit()
    svc_id = orders.place_order(_account(), db.session.get(BmTariff, t.id), actor="test").id
    db.session.commit()
    assert orders.order_service(svc_id) == "ordered"
    assert _svc(svc_id).handler_id == second.id
    assert seller.balance("second@example.com") == Decimal("700.00")
    assert seller.balance(SELLER_LOGIN) == Decimal("1000.00")


def test_an_order_left_ordering_by_a_dead_job_is_looked_up_not_resent(app, ctx, seller, monkeypatch):
    """The order call reached the seller and the worker died before it learnt the outcome: the
    retry sweep hands the order over again, and its job finds the service there and links it;
    the seller was asked once and paid once."""
    from datetime import timedelta

    from portal.models import utcnow

    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    h = make_handler(seller)
    t = imported_tariff(h)
    svc_id = orders.place_order(_account(), t, actor="test").id
    db.session.commit()
    handlers.client_for(h).order("vds", pricelist=t.remote_id, period=1, remoteid=str(svc_id),
                                 datacenter=t.remote_datacenter)  # what the dead job sent
    svc = _svc(svc_id)
    svc.state, svc.handler_id, svc.order_snapshot = "ordering", h.id, []
    svc.order_sent_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    assert orders.retry_due() == 1
    assert orders.retry_due() == 0  # handed over once, not on every sweep
    assert orders.order_service(svc_id) == "ordered"
    assert _order_calls(seller) == 1 and len(seller.services) == 1
    assert _svc(svc_id).remote_id == next(iter(seller.services))


def test_two_renewal_runs_at_once_renew_once(app, ctx, seller, monkeypatch):
    """The nightly renewal and staff's button run at the same moment: one renewal on the seller."""
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    svc_id, nxt = _ordered_service(seller, app)
    start, results = threading.Barrier(2), []

    def run():
        with app.app_context():
            start.wait()
            results.append(orders.renew_due(nxt)["renewed"])
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [0, 1] and _prolongs(seller) == 1
