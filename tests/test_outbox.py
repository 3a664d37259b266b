"""The outbox: rows written in the change's transaction, one waiting job per account and
platform after the commit, and the sweeper that brings back what Redis lost."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from portal.billing import accounts as acc
from portal.extensions import db
from portal.models import OutboxEvent, SyncState, utcnow
from portal.platforms.outbox import sweep
from portal.platforms.reconcile import request_sync, sync_states
from portal.queue import get_queue, get_redis
from tests.builders import gen_account, gen_agent
from tests.platform_fixtures import wait_for


def jobs_in(queue: str = "default") -> list[str]:
    return get_queue(queue).job_ids


def outbox_rows(account_id: int) -> list[OutboxEvent]:
    return list(db.session.scalars(select(OutboxEvent).filter_by(account_id=account_id).order_by(OutboxEvent.id)))


def test_a_rolled_back_change_leaves_nothing_for_the_platforms(ctx):
    """If a change is rolled back, is there nothing left for the platforms to do?"""
    account = gen_account(agent=gen_agent(platform="webhook"), activate=False)
    acc.activate(account, actor="test")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert jobs_in("default") == []


def test_an_account_on_no_platform_gives_the_platforms_nothing_to_do(ctx):
    """Does a change to an account that is on no platform stay out of the outbox?"""
    account = gen_account(agent=gen_agent())
    acc.block(account, "manager", actor="test")
    db.session.commit()
    assert outbox_rows(account.id) == [] and jobs_in("default") == []


def test_changes_to_one_account_wait_as_one_job(ctx):
    """If an account changes several times before a worker gets to it, does one job wait for it?"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    acc.block(account, "manager", actor="test")
    db.session.commit()
    acc.unblock(account, "manager", actor="test")
    db.session.commit()
    rows = outbox_rows(account.id)
    assert [r.reason for r in rows] == ["account.activate", "account.block", "account.unblock"]
    assert all(r.enqueued_at is not None and r.processed_at is None for r in rows)
    assert jobs_in("default") == [f"reconcile-webhook-{account.id}-default"]


def test_a_change_while_the_accounts_job_is_finishing_gets_a_run_of_its_own(ctx):
    """If the account's job has started (and may have read the account already) when a change
    is committed, is one follow-up run queued for it, and only one however many changes follow?"""
    from rq.job import Job, JobStatus

    account = gen_account(agent=gen_agent(platform="webhook"))
    first = f"reconcile-webhook-{account.id}-default"
    Job.fetch(first, connection=get_redis()).set_status(JobStatus.STARTED)  # a worker has it
    acc.block(account, "manager", actor="test")
    db.session.commit()
    acc.unblock(account, "manager", actor="test")
    db.session.commit()
    assert [j for j in jobs_in("default") if j != first] == [f"{first}-next"]


def test_sync_now_puts_a_failed_account_first_in_line_with_fresh_attempts(ctx):
    """When staff press "sync now" on an account that gave up, is it queued ahead of routine
    changes with a fresh set of attempts?"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    get_redis().flushdb()  # forget the routine job
    db.session.add(SyncState(account_id=account.id, platform="webhook", state="dead", attempts=8,
                             last_error="HTTP 500: boom"))
    db.session.commit()
    request_sync(account.id, actor="staff:admin")
    db.session.commit()
    [shown] = sync_states(account.id)
    assert (shown["platform"], shown["state"], shown["attempts"]) == ("webhook", "pending", 0)
    assert jobs_in("high") == [f"reconcile-webhook-{account.id}-high"]
    assert jobs_in("default") == []


def test_the_sweeper_brings_back_a_job_redis_lost_once_it_is_overdue(ctx):
    """If Redis loses a queued job, does the sweeper enqueue it again, but only after
    OUTBOX_REENQUEUE_AFTER (not while it may still be on its way)?"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    get_redis().flushdb()  # Redis restarted without its data
    sweep()
    assert jobs_in("default") == []
    long_ago = utcnow() - timedelta(seconds=current_app.config["OUTBOX_REENQUEUE_AFTER"] + 1)
    db.session.execute(update(OutboxEvent).filter_by(account_id=account.id).values(enqueued_at=long_ago))
    db.session.commit()
    assert sweep()["outbox_pairs"] == 1
    assert jobs_in("default") == [f"reconcile-webhook-{account.id}-default"]


def test_the_sweeper_enqueues_a_retry_when_it_is_due_and_not_before(ctx):
    """Is an account whose retry is due enqueued again, and one whose retry is later left waiting?"""
    agent = gen_agent(platform="webhook")
    due, later = gen_account(agent=agent), gen_account(agent=agent)
    db.session.execute(update(OutboxEvent).values(processed_at=utcnow()))
    now = utcnow()
    db.session.add_all([
        SyncState(account_id=due.id, platform="webhook", state="retry", attempts=1,
                  next_attempt_at=now - timedelta(seconds=1)),
        SyncState(account_id=later.id, platform="webhook", state="retry", attempts=1,
                  next_attempt_at=now + timedelta(hours=1)),
    ])
    db.session.commit()
    get_redis().flushdb()
    assert sweep()["retries"] == 1
    assert jobs_in("default") == [f"reconcile-webhook-{due.id}-default"]


def test_the_sweeper_gives_a_dead_jobs_account_a_new_job_but_leaves_accounts_in_a_jobs_hands(ctx):
    """Once their rows are overdue, does the sweeper queue a job for an account no job has in
    hand (its job died and its lock expired), and none for one whose job holds its lock or
    still waits in the queue?"""
    from portal.platforms import reconcile

    agent = gen_agent(platform="webhook")
    dead, running, waiting = (gen_account(agent=agent) for _ in range(3))
    get_redis().flushdb()
    long_ago = utcnow() - timedelta(seconds=current_app.config["OUTBOX_REENQUEUE_AFTER"] + 1)
    db.session.execute(update(OutboxEvent).values(enqueued_at=long_ago))
    db.session.commit()
    lock = reconcile._take("webhook", running.id, wait=0)  # a live job holds this one
    get_queue("default").enqueue("jobs.sync.reconcile_account", "webhook", waiting.id,
                                 job_id=f"reconcile-webhook-{waiting.id}-default")
    try:
        assert sweep()["outbox_pairs"] == 1
    finally:
        reconcile._release(lock)
    assert sorted(jobs_in("default")) == sorted(f"reconcile-webhook-{a.id}-default" for a in (dead, waiting))


def test_a_job_that_finds_its_account_busy_does_not_wait_and_the_holder_queues_it_again(webhook):
    """If a change's job (or the nightly full reconcile's) starts while another job is syncing
    the account (the platform slow, then failing), does it give way at once instead of holding
    up its worker, and does the running job queue a new one for each as it finishes?

    The first job is held at the platform's door (an emulator gate) until the test has run the
    other two, so it holds the account for exactly as long as the test needs, however slow the
    machine is."""
    from jobs.sync import reconcile_account as job
    from portal.platforms import reconcile

    account = gen_account(agent=gen_agent(platform="webhook"))
    account_id = account.id
    get_redis().flushdb()
    webhook.fail("busy", status=503, times=1)  # the running job ends in retry: no second pass
    gate = webhook.hold("/hook")
    app = current_app._get_current_object()
    results = []

    def holder():
        with app.app_context():
            results.append(reconcile.reconcile_account("webhook", account_id))

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert gate.wait_arrivals(1, timeout=30), "the first job never reached the platform"
        assert get_redis().exists(f"portal:lock:reconcile:webhook:{account_id}")  # it holds the account
        acc.block(account, "manager", actor="test")
        db.session.commit()
        get_queue("default").empty()  # the change's job, taken by a worker: it runs here
        started = time.monotonic()
        assert job("webhook", account_id) == "busy"
        assert job("webhook", account_id, scheduled=True) == "busy"
        # at once: a job that waited for the account would wait until the gate opens (a minute)
        assert time.monotonic() - started < 15
        assert results == [] and len(gate.arrived) == 1  # the first job is still at the door, alone
    finally:
        gate.open()
        thread.join(30)
        webhook.gates.remove(gate)
    assert results == ["retry"]
    assert webhook.requests == [{"login": account.login, "status": 503}]
    assert jobs_in("default") == [f"reconcile-webhook-{account_id}-default"]
    assert jobs_in("low") == [f"reconcile-webhook-{account_id}-low"]


def test_a_job_that_loses_its_lock_midway_queues_one_more_pass(webhook):
    """If a job's lock vanishes while it waits on the platform (Redis restarted empty), so
    that another job may have run alongside, is one more pass queued to settle the account?"""
    from portal.platforms import reconcile

    account_id = gen_account(agent=gen_agent(platform="webhook")).id
    get_redis().flushdb()
    webhook.latency = reconcile.LOCK_SECONDS / 2  # past a renewal
    lock = f"portal:lock:reconcile:webhook:{account_id}"
    app = current_app._get_current_object()
    results = []

    def run():
        with app.app_context():
            results.append(reconcile.reconcile_account("webhook", account_id))

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: get_redis().exists(lock), what="the job to hold the account")
    get_redis().delete(lock)
    thread.join(30)
    assert results == ["ok"]
    assert jobs_in("default") == [f"reconcile-webhook-{account_id}-default"]
