"""Platform sync end to end: the real worker (and scheduler) as subprocesses, the webhook
emulator over real HTTP, failures on purpose."""
from __future__ import annotations

import json

from flask import current_app
from sqlalchemy import select

from portal.billing import accounts as acc
from portal.extensions import db
from portal.models import Account, AuditEntry
from portal.platforms.reconcile import retry_dead, sync_states
from portal.queue import get_queue
from tests.builders import gen_account, gen_agent
from tests.platform_fixtures import HOOK_PASSWORD, converged, redis_down, state_of, unprocessed, wait_for


def test_changes_made_while_the_platform_is_down_reach_it_when_it_is_back(webhook, processes):
    """If the platform is down while accounts change, does every change reach it once it is back?"""
    processes.start("jobs.worker", SYNC_MAX_ATTEMPTS=1000)
    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)
    agent = gen_agent(platform="webhook")
    webhook.down()
    first = gen_account(agent=agent)
    second = gen_account(agent=agent)
    acc.block(second, "manager", actor="test")
    db.session.commit()
    ids = [first.id, second.id]

    wait_for(lambda: all(state_of(i) and state_of(i).state == "retry" and state_of(i).attempts >= 2 for i in ids),
             what="failed attempts while the receiver is down")
    assert "ConnectionError" in state_of(first.id).last_error
    acc.block(first, "subscriber", actor="test")  # changed again while failing
    db.session.commit()
    assert webhook.states == {}

    webhook.up()
    wait_for(lambda: converged(webhook, ids), what="every account to converge")
    first_doc, second_doc = (webhook.states[db.session.get(Account, i).login] for i in ids)
    assert (first_doc["status"], first_doc["block_reasons"]) == ("blocked", ["subscriber"])
    assert (second_doc["status"], second_doc["block_reasons"]) == ("blocked", ["manager"])
    assert unprocessed(ids) == []
    calls = list(db.session.scalars(select(AuditEntry).filter_by(action="platform.call", actor="platform:webhook")))
    assert any("error" in c.after for c in calls) and any(c.after.get("status") == 200 for c in calls)
    assert HOOK_PASSWORD not in json.dumps([[c.summary, c.after] for c in calls])


def test_changes_committed_while_redis_is_down_are_not_lost(app, webhook, processes):
    """If Redis is down when a change is committed, does the platform still get it?"""
    processes.start("jobs.worker")
    agent = gen_agent(platform="webhook")
    with redis_down(app):
        accounts = [gen_account(agent=agent) for _ in range(3)]
        acc.block(accounts[0], "manager", actor="test")
        db.session.commit()
    ids = [a.id for a in accounts]
    rows = unprocessed(ids)
    assert {r.account_id for r in rows} == set(ids)
    assert all(r.enqueued_at is None for r in rows)
    assert sum(get_queue(name).count for name in current_app.config["RQ_QUEUES"]) == 0

    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)  # Redis is back; the sweeper runs at once
    wait_for(lambda: converged(webhook, ids), what="every account to converge after the sweep")
    assert unprocessed(ids) == []
    assert webhook.states[accounts[0].login]["status"] == "blocked"


def test_an_account_the_platform_keeps_refusing_ends_dead_and_can_be_retried(webhook, processes):
    """If the platform keeps refusing an account, does it end up dead with the platform's
    error, and does a retry bring it through once the platform accepts it?"""
    processes.start("jobs.worker", SYNC_MAX_ATTEMPTS=3)
    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)
    webhook.fail("tariff 'Gold' is not sold here", status=422, login="refused")
    agent = gen_agent(platform="webhook")
    good = gen_account(agent=agent)
    bad = gen_account(agent=agent, login="refused")

    wait_for(lambda: state_of(bad.id) and state_of(bad.id).state == "dead", what="the dead state")
    [shown] = sync_states(bad.id)
    json.dumps(shown)
    assert shown["state"] == "dead" and shown["attempts"] == 3 and shown["next_attempt_at"] is None
    assert "422" in shown["last_error"] and "tariff 'Gold' is not sold here" in shown["last_error"]
    assert [r["status"] for r in webhook.requests if r["login"] == "refused"] == [422, 422, 422]
    wait_for(lambda: converged(webhook, [good.id]), what="the other account to go through")
    assert "refused" not in webhook.states

    webhook.heal()
    assert retry_dead(account_id=bad.id, actor="staff:admin") == 1
    db.session.commit()
    wait_for(lambda: converged(webhook, [bad.id]), what="the retried account to go through")
    [shown] = sync_states(bad.id)
    assert (shown["state"], shown["attempts"], shown["last_error"]) == ("ok", 0, None)
    assert shown["synced_at"] is not None and shown["desired"]["login"] == "refused"
