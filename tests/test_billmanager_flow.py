"""BILLmanager reselling end to end: the emulator over real HTTP, the real RQ worker."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from rq.registry import StartedJobRegistry
from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import clock, ledger
from portal.billing.charging import charge
from portal.extensions import db
from portal.models import AuditEntry, BmService, BmTariff, Contract, SyncState, Task
from portal.platforms.billmanager import orders
from portal.queue import get_queue, get_redis
from tests.billmanager_fixtures import SELLER_LOGIN, SELLER_PASSWORD, WORKER_ENV, imported_tariff, make_handler
from tests.builders import gen_account, gen_contract
from tests.platform_fixtures import wait_for


def _account(balance="1000.00"):
    c = gen_contract()
    ledger.payment(c.id, Decimal(balance), actor="test", external_id=f"p{c.id}")
    db.session.commit()
    return gen_account(contract=c)


def _order(account, tariff, domain=None):
    svc = orders.place_order(account, tariff, domain=domain, actor="test")
    db.session.commit()
    orders.enqueue_order(svc.id)
    return svc.id


def _svc(svc_id) -> BmService:
    return db.session.get(BmService, svc_id)


def _ordered(svc_id):
    return wait_for(lambda: _svc(svc_id).state in ("ordered", "attention") and _svc(svc_id).state,
                    what="the order to finish")


def test_import_brings_periods_prices_and_resources_disabled(ctx, seller):
    """Importing VDS-1 gives a disabled tariff with the seller's periods, costs and resources."""
    h = make_handler(seller)
    t = imported_tariff(h, enabled=False)
    t = db.session.get(BmTariff, t.id)
    assert (t.name, t.enabled, t.price, t.remote_datacenter_name) == ("VDS-1", False, Decimal("300.00"), "Moscow DC")
    assert [p["months"] for p in t.periods] == [1, 3, 12] and t.periods[1]["cost"] == "855.00"
    assert {r["intname"]: r["amount"] for r in t.resources} == {"ram": "1024", "disk": "20", "ncpu": "1"}
    # every call carried the credentials in the form body; the audit log never has the password
    assert all(c["user"] == SELLER_LOGIN for c in seller.calls)
    assert not db.session.scalar(select(AuditEntry).where(AuditEntry.after.cast(db.String).contains(SELLER_PASSWORD)))


def test_resync_applies_the_sellers_changes_and_keeps_ours(ctx, seller):
    """The seller raises its cost and adds a disk: re-sync shows it; our name and price stay."""
    from portal.platforms.billmanager import importer

    t = imported_tariff(make_handler(seller), price="450.00")
    importer.update_tariff(t, {"name": "Наш VDS"}, actor="test")
    db.session.commit()
    seller.pricelists[0]["periods"] = {1: "320.00", 12: "3400.00"}
    assert "periods" in importer.resync_tariff(t.id)
    t = db.session.get(BmTariff, t.id)
    assert (t.name, t.price, t.seller_cost(1), t.enabled) == ("Наш VDS", Decimal("450.00"), Decimal("320.00"), True)
    seller.pricelists = seller.pricelists[1:]  # gone on the seller
    importer.resync_tariff(t.id)
    assert db.session.get(BmTariff, t.id).enabled is False


def test_an_order_is_paid_here_and_active_on_both_sides(ctx, seller, processes):
    """A subscriber orders VDS-1 for 450 ₽/month: the month's share is charged here, the seller
    spends 300 ₽ once, and the service is active there with our id as remoteid."""
    processes.start("jobs.worker", **WORKER_ENV)
    t = imported_tariff(make_handler(seller), price="450.00")
    a = _account()
    cid = a.contract_id
    svc_id = _order(a, t, domain="shop.example.ru")
    assert db.session.get(Contract, cid).balance < Decimal("1000.00")  # paid through the ledger at once
    assert _ordered(svc_id) == "ordered"
    svc = _svc(svc_id)
    remote = seller.services[svc.remote_id]
    assert remote["remoteid"] == str(svc_id) and remote["domain"] == "shop.example.ru"
    assert seller.balance(SELLER_LOGIN) == Decimal("700.00")
    wait_for(lambda: seller.status(svc.remote_id) == 2, timeout=5, what="in progress to end")
    orders.poll()
    assert _svc(svc_id).remote_status == 2


def test_a_short_seller_balance_leaves_the_order_pending_with_a_task(ctx, seller, processes):
    """The selling account has 350 ₽ and must keep 100: the order waits, the department gets
    a task; after a top-up staff restart it and it goes through."""
    processes.start("jobs.worker", **WORKER_ENV)
    seller.set_balance(SELLER_LOGIN, "350.00")
    t = imported_tariff(make_handler(seller, min_balance="100.00"))
    svc_id = _order(_account(), t)
    wait_for(lambda: _svc(svc_id).last_error, what="the balance check")
    assert _svc(svc_id).state == "pending" and not seller.services
    task = db.session.scalar(select(Task).filter_by(object_type="bm_service", object_id=svc_id))
    assert task.state == "open" and task.department_id is not None and "350.00" in task.body
    seller.set_balance(SELLER_LOGIN, "1000.00")
    orders.restart(_svc(svc_id), actor="staff:admin")
    db.session.commit()
    orders.enqueue_order(svc_id)
    assert _ordered(svc_id) == "ordered" and len(seller.services) == 1
    assert db.session.get(Task, task.id).state == "done"


def test_a_timeout_after_the_debit_never_orders_twice(ctx, seller, processes):
    """The seller takes the money but answers too late: the job finds the new service and
    links it; the seller has one service and was paid once."""
    processes.start("jobs.worker", **WORKER_ENV)
    seller.fail("v2.vds.order.param", "timeout")
    t = imported_tariff(make_handler(seller))
    svc_id = _order(_account(), t)
    assert _ordered(svc_id) == "ordered"
    assert len(seller.services) == 1 and seller.balance(SELLER_LOGIN) == Decimal("700.00")
    assert [c["func"] for c in seller.calls].count("v2.vds.order.param") == 1


def test_a_legacy_seller_gets_the_old_order_function(ctx, seller, processes):
    """A seller without v2.vds.order.param: the order goes through vds.order.param with
    ``period``, once."""
    processes.start("jobs.worker", **WORKER_ENV)
    seller.legacy = True
    svc_id = _order(_account(), imported_tariff(make_handler(seller)))
    assert _ordered(svc_id) == "ordered" and len(seller.services) == 1
    legacy = [c for c in seller.calls if c["func"] == "vds.order.param"]
    assert len(legacy) == 1 and legacy[0]["params"]["period"] == "1"


def test_an_order_whose_outcome_is_unknown_is_flagged_not_resent(ctx, seller, processes):
    """The order call times out and, from then on, the seller's list answers with a DDoS
    guard's page: the order is flagged for a person with a task, and a stray re-run of the
    job does not send it again."""
    processes.start("jobs.worker", **WORKER_ENV)
    t = imported_tariff(make_handler(seller))
    seller.fail("v2.vds.order.param", "timeout")
    svc_id = _order(_account(), t)
    # the snapshot before the call is read; the look-ups after the lost answer are not
    wait_for(lambda: any(c["func"] == "v2.vds.order.param" for c in seller.calls), what="the order call")
    seller.fail("vds", "html", times=None)
    assert _ordered(svc_id) == "attention"
    assert "unknown" in _svc(svc_id).last_error
    assert db.session.scalar(select(Task).filter_by(object_type="bm_service", object_id=svc_id)).state == "open"
    orders.enqueue_order(svc_id)  # a stray re-run
    wait_for(lambda: get_queue("high").count == 0 and not StartedJobRegistry("high", connection=get_redis()).count,
             what="the re-run")
    assert [c["func"] for c in seller.calls].count("v2.vds.order.param") == 1
    assert _svc(svc_id).state == "attention"


def test_blocks_suspend_resumes_and_end_propagate_with_the_sellers_refusals(ctx, seller, processes):
    """A manager's block suspends the VDS on the seller, the unblock resumes it; when the
    seller refuses a suspend its message is shown on the sync state; ending the service deletes it."""
    processes.start("jobs.worker", **WORKER_ENV)
    t = imported_tariff(make_handler(seller))
    a = _account()
    aid = a.id
    svc_id = _order(a, t)
    assert _ordered(svc_id) == "ordered"
    rid = _svc(svc_id).remote_id
    wait_for(lambda: seller.status(rid) == 2, timeout=5, what="activation")

    acc.block(db.session.get(type(a), aid), "manager", actor="test")
    db.session.commit()
    wait_for(lambda: seller.services[rid]["status"] == 3, what="suspend on the seller")
    acc.unblock(db.session.get(type(a), aid), "manager", actor="test")
    db.session.commit()
    wait_for(lambda: seller.services[rid]["status"] == 2, what="resume on the seller")

    seller.fail("vds.suspend", "access", times=None)
    acc.block(db.session.get(type(a), aid), "manager", actor="test")
    db.session.commit()
    st = wait_for(lambda: db.session.scalar(select(SyncState).filter_by(account_id=aid, platform="billmanager",
                                                                        state="retry")), what="the refusal")
    assert "refused to suspend" in st.last_error and "denied" in st.last_error
    seller.heal()
    acc.unblock(db.session.get(type(a), aid), "manager", actor="test")
    db.session.commit()

    acc.end_service(_svc(svc_id).assigned, actor="test")
    db.session.commit()
    wait_for(lambda: seller.services[rid]["status"] == 4, what="delete on the seller")
    orders.poll()
    assert _svc(svc_id).state == "deleted"
    assert not db.session.scalar(select(Task).filter_by(object_type="bm_service", object_id=svc_id))


def test_a_balance_block_suspends_on_the_seller_and_a_payment_resumes(ctx, seller, processes):
    """The subscriber runs out of money: the balance block suspends the VDS there; paying resumes it."""
    processes.start("jobs.worker", **WORKER_ENV)
    t = imported_tariff(make_handler(seller), price="450.00")
    a = _account("450.00")
    cid = a.contract_id
    svc_id = _order(a, t)
    assert _ordered(svc_id) == "ordered"
    rid = _svc(svc_id).remote_id
    wait_for(lambda: seller.status(rid) == 2, timeout=5, what="activation")
    ledger.post(cid, "correction", Decimal("-2000.00"), actor="test", comment="test")
    db.session.commit()
    wait_for(lambda: seller.services[rid]["status"] == 3, what="suspend after the balance block")
    ledger.payment(cid, Decimal("3000.00"), actor="test", external_id="pay-back")
    db.session.commit()
    wait_for(lambda: seller.services[rid]["status"] == 2, what="resume after the payment")


def test_renewal_follows_the_charge_run_once_per_month(ctx, seller, processes):
    """Next month's charge run charges the VDS; the renewal after it extends the seller's
    expiry by a month, once, even if it runs again."""
    processes.start("jobs.worker", **WORKER_ENV)
    t = imported_tariff(make_handler(seller))
    svc_id = _order(_account("5000.00"), t)
    assert _ordered(svc_id) == "ordered"
    rid = _svc(svc_id).remote_id
    expiry = seller.services[rid]["expiredate"]
    first = clock.month_start(clock.today())
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    assert orders.renew_due(clock.today())["renewed"] == 0  # this month was paid by the order
    charge(nxt)
    db.session.commit()
    assert orders.renew_due(nxt)["renewed"] == 1
    assert orders.renew_due(nxt)["renewed"] == 0
    new_expiry = seller.services[rid]["expiredate"]
    assert (new_expiry.year * 12 + new_expiry.month) - (expiry.year * 12 + expiry.month) == 1
    assert seller.balance(SELLER_LOGIN) == Decimal("400.00")
    assert _svc(svc_id).remote_expires == new_expiry


def test_the_poller_updates_and_raises_a_task_for_a_service_deleted_there(ctx, seller, processes):
    """The seller's staff delete our active VDS: the poller does not copy it, it opens a task."""
    processes.start("jobs.worker", **WORKER_ENV)
    h = make_handler(seller)
    t = imported_tariff(h)
    svc_id = _order(_account(), t)
    assert _ordered(svc_id) == "ordered"
    rid = _svc(svc_id).remote_id
    seller.services[rid]["expiredate"] = date(2031, 1, 31)
    orders.poll()
    assert _svc(svc_id).remote_expires == date(2031, 1, 31) and _svc(svc_id).remote_params["ip"]
    seller.delete_remotely(rid)
    assert orders.poll()["deleted_there"] == 1
    svc = _svc(svc_id)
    assert svc.state == "ordered" and svc.assigned.state == "active"
    task = db.session.scalar(select(Task).filter_by(object_type="bm_service", object_id=svc_id))
    assert task.state == "open" and task.department_id == h.department_id


def test_the_twice_daily_balance_check_tasks_the_department_below_the_minimum(ctx, seller):
    """The selling account has 1000 ₽ but the handler wants 2000 kept: the department gets one
    task (not one per check); after a top-up the next check closes it."""
    from portal.platforms.billmanager import handlers

    h = make_handler(seller, min_balance="2000.00")
    assert handlers.check_balances() == {"checked": 1, "failed": 0}
    handlers.check_balances()
    tasks = db.session.scalars(select(Task).filter_by(object_type="bm_handler", object_id=h.id)).all()
    assert len(tasks) == 1 and tasks[0].state == "open" and tasks[0].department_id == h.department_id
    seller.set_balance(SELLER_LOGIN, "5000.00")
    handlers.check_balances()
    assert db.session.get(Task, tasks[0].id).state == "done"
    assert db.session.get(type(h), h.id).last_balance == Decimal("5000.00")


def test_a_seller_that_refuses_authinfo_is_used_through_a_session(ctx, seller):
    """The seller disables authinfo for client accounts: the client logs in once with
    func=auth and carries on; an expired session is renewed once; the password stays out of
    the audit log."""
    from portal.platforms.billmanager import handlers, importer

    seller.accounts[SELLER_LOGIN]["authinfo"] = False
    h = make_handler(seller)
    assert handlers.refresh_balance(h.id)["balance"] == "1000.00"
    assert importer.fetch_pricelist(h.id)["tariffs"] == 3
    logins = [c for c in seller.calls if c["func"] == "auth"]
    assert len(logins) == 2  # one per client (each job builds its own)
    client = handlers.client_for(db.session.get(type(h), h.id))
    client.balance()
    seller.expire_sessions()
    assert client.balance()[0] == Decimal("1000.00")
    assert not db.session.scalar(select(AuditEntry).where(AuditEntry.after.cast(db.String).contains(SELLER_PASSWORD)))


def test_a_deletion_the_seller_wants_confirmed_is_shown_with_its_message(ctx, seller, processes):
    """The seller wants deletions confirmed by phone: the service stays there, and staff see
    the seller's words on the account's sync state until it is sorted out."""
    processes.start("jobs.worker", **WORKER_ENV)
    a = _account()
    aid = a.id
    svc_id = _order(a, imported_tariff(make_handler(seller)))
    assert _ordered(svc_id) == "ordered"
    rid = _svc(svc_id).remote_id
    wait_for(lambda: seller.status(rid) == 2, timeout=5, what="activation")
    seller.fail("vds.delete", "confirm", times=None)
    acc.end_service(_svc(svc_id).assigned, actor="test")
    db.session.commit()
    st = wait_for(lambda: db.session.scalar(select(SyncState).filter_by(account_id=aid, platform="billmanager",
                                                                        state="retry")), what="the refusal")
    assert "refused to delete" in st.last_error and "confirmed by a code sent to the phone" in st.last_error
    assert seller.status(rid) == 2
