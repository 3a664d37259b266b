"""The periodic re-check of online payments (issue 18): a payment whose notification was lost is
read back from ЮKassa (its emulator over real HTTP) by the real RQ worker, credited once, or
marked canceled or expired; the service down meanwhile loses nothing."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from rq.job import Job
from sqlalchemy import select, update

from portal.billing import online_payments as op
from portal.extensions import db
from portal.models import Account, AuditEntry, Contract, LedgerEntry, OnlinePayment, utcnow
from portal.payments.yookassa import service
from portal.queue import get_queue, get_redis
from tests.platform_fixtures import wait_for
from tests.yookassa_fixtures import debtor, set_shop


def pay(contract: Contract, amount: str) -> tuple[int, str]:
    """A payment started in the cabinet (the cabinet's own call): (our id, the service's id)."""
    p = service.create(contract, amount, actor="cabinet:test", return_url=lambda pk: f"http://portal/back/{pk}")
    return p.id, p.payment_id


def age(pk: int, delta: timedelta) -> None:
    """As if the payment had been created (and last read back) ``delta`` ago."""
    p = db.session.get(OnlinePayment, pk)
    created, checked = p.created_at - delta, p.checked_at - delta
    db.session.execute(update(OnlinePayment.__table__).where(OnlinePayment.id == pk)
                       .values(created_at=created, checked_at=checked))
    db.session.commit()


def credits(contract_id: int) -> list[Decimal]:
    db.session.expire_all()
    return list(db.session.scalars(select(LedgerEntry.amount).where(
        LedgerEntry.contract_id == contract_id, LedgerEntry.idempotency_key.like("yookassa:%"))))


def state(pk: int) -> tuple[str, str | None]:
    db.session.expire_all()
    p = db.session.get(OnlinePayment, pk)
    return p.state, p.error


def run_job() -> dict:
    """The scheduled job, through the queue, done by the worker: its result."""
    job = get_queue("default").enqueue("jobs.payments.recheck_online_payments")
    wait_for(lambda: Job.fetch(job.id, connection=get_redis()).get_status() in ("finished", "failed"),
             what="the re-check job")
    job = Job.fetch(job.id, connection=get_redis())
    assert job.get_status() == "finished", job.latest_result()
    return job.return_value()


@pytest.mark.integration
def test_lost_notifications_are_read_back_by_the_worker_even_after_the_service_was_down(app, emu, processes):
    """The notifications of a paid and of a canceled payment never came, and one payment is still
    pending a day later: does the scheduled job, run by the worker, credit the paid one once and
    lift the block, show the canceled one canceled and the stale one expired, leave a payment
    just started alone, and, while the service is down, change nothing until it is back?"""
    set_shop(emu)
    contracts = {name: debtor(name) for name in ("anna", "boris", "vera", "gleb")}
    amounts = {"anna": "500.00", "boris": "200.00", "vera": "300.00", "gleb": "150.00"}
    made = {name: pay(c, amounts[name]) for name, (c, _a) in contracts.items()}
    anna_contract, anna_account = contracts["anna"][0].id, contracts["anna"][1].id
    before = db.session.get(Contract, anna_contract).balance
    emu.finish(made["anna"][1], "succeeded")   # paid; emu.notify is off: the notification is lost
    emu.finish(made["boris"][1], "canceled")
    for name, delta in (("anna", timedelta(minutes=10)), ("boris", timedelta(minutes=10)),
                        ("vera", op.EXPIRES_AFTER + timedelta(minutes=5))):
        age(made[name][0], delta)
    processes.start("jobs.worker")

    emu.down()
    assert run_job() == {"checked": 0, "credited": 0, "canceled": 0, "expired": 0, "unavailable": 1}
    assert credits(anna_contract) == []
    assert {name: state(pk)[0] for name, (pk, _id) in made.items()} == dict.fromkeys(made, "pending")

    emu.up()
    assert run_job() == {"checked": 3, "credited": 1, "canceled": 1, "expired": 1, "unavailable": 0}
    assert credits(anna_contract) == [Decimal(amounts["anna"])]
    assert db.session.get(Contract, anna_contract).balance == before + Decimal(amounts["anna"])
    assert db.session.get(Account, anna_account).status == "active"
    assert state(made["anna"][0]) == ("succeeded", None)
    assert state(made["boris"][0]) == ("canceled", "canceled: expired_on_confirmation")
    assert state(made["vera"][0]) == ("canceled", op.EXPIRED)
    assert state(made["gleb"][0]) == ("pending", None)  # minutes old: its notification may still come
    # run again: nothing is due, nothing moves
    assert run_job() == {"checked": 0, "credited": 0, "canceled": 0, "expired": 0, "unavailable": 0}
    assert credits(anna_contract) == [Decimal(amounts["anna"])]
    # the late notification of the expired payment's success is still read back and credited
    emu.payments[made["vera"][1]]["status"] = "pending"
    emu.finish(made["vera"][1], "succeeded")
    assert emu.send(made["vera"][1]) == 200
    vera_contract = contracts["vera"][0].id
    assert credits(vera_contract) == [Decimal(amounts["vera"])]
    assert db.session.scalar(select(AuditEntry).filter_by(action="online_payment.expired")) is not None


def test_the_recheck_backs_off_and_stops_after_the_services_expiry(ctx, emu):
    """Which pending payments are read back now: none younger than a few minutes, then at gaps
    as long as the payment's age at its last check (at most an hour), and a day-old one once
    more, however recently it was read?"""
    set_shop(emu)
    c, _a = debtor("anna")
    now = utcnow()
    minute = timedelta(minutes=1)
    cases = {  # (age, minutes since the last check or None) -> due?
        (2 * minute, None): False,                    # too young
        (10 * minute, None): True,                    # never read back
        (10 * minute, 2 * minute): False,             # read at 8 min: next at 16
        (10 * minute, 7 * minute): True,              # read at 3 min: next at 6
        (180 * minute, 50 * minute): False,           # read at 130 min: gap capped at an hour
        (180 * minute, 61 * minute): True,
        (op.EXPIRES_AFTER + minute, 2 * minute): True,  # the last read past the service's expiry
        (op.GIVE_UP_AFTER + minute, None): False,     # left to staff
    }
    ids = {}
    for n, (created_ago, checked_ago) in enumerate(cases):
        p = OnlinePayment(shop_id=op.shop().id, contract_id=c.id, amount=Decimal("100.00"), state="pending",
                          idempotence_key=f"k{n}", payment_id=f"p{n}", actor="test", created_at=now - created_ago,
                          checked_at=None if checked_ago is None else now - checked_ago)
        db.session.add(p)
        db.session.flush()
        ids[p.id] = (created_ago, checked_ago)
    db.session.commit()
    due = set(op.due_for_recheck(now))
    assert {ids[pk] for pk in due} == {case for case, expected in cases.items() if expected}


@pytest.mark.integration
def test_parallel_rechecks_and_the_late_notification_credit_once(app, ctx, server, emu):  # noqa: F811
    """Three re-check runs at once and the notification arriving meanwhile: one credit?"""
    set_shop(emu)
    c, _a = debtor("anna")
    pk, remote_id = pay(c, "700.00")
    cid = c.id
    emu.finish(remote_id, "succeeded")
    age(pk, timedelta(minutes=10))
    db.session.rollback()
    barrier = threading.Barrier(4)

    def recheck() -> dict:
        with app.app_context():
            barrier.wait()
            counts = service.recheck_pending()
            db.session.remove()
            return counts

    def notify() -> int:
        barrier.wait()
        return emu.send(remote_id)

    with ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(recheck) for _ in range(3)]
        sent = pool.submit(notify)
        results = [f.result() for f in runs]
        assert sent.result() == 200
    assert sum(r["checked"] for r in results) >= 1
    assert credits(cid) == [Decimal("700.00")]
    assert state(pk) == ("succeeded", None)
