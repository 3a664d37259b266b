"""API v1 platform sync of an account: how it stands on each platform, and "sync now"."""
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry, SyncState
from portal.platforms.reconcile import reconcile_account
from portal.queue import get_queue, get_redis
from tests.builders import gen_account, gen_agent, gen_token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_sync_state_per_platform(client, webhook):  # noqa: F811
    """Can my system see, per platform, what billing wants there, what the platform has and
    whether the last attempt worked?"""
    h = bearer(gen_token("viewer"))
    account = gen_account(agent=gen_agent(platform="webhook"))
    r = client.get(f"/api/v1/accounts/{account.id}/sync", headers=h)
    assert r.status_code == 200
    [shown] = r.json["items"]
    assert (shown["platform"], shown["state"], shown["attempts"]) == ("webhook", "pending", 0)

    assert reconcile_account("webhook", account.id) == "ok"  # what the worker does with the job
    [shown] = client.get(f"/api/v1/accounts/{account.id}/sync", headers=h).json["items"]
    assert shown["state"] == "ok" and shown["last_error"] is None and shown["synced_at"]
    assert shown["desired"]["login"] == account.login and shown["actual"] == shown["desired"]
    assert webhook.states[account.login]["status"] == "active"


def test_an_account_on_no_platform(client, ctx):
    """What does an account that no platform serves show?"""
    account = gen_account()
    r = client.get(f"/api/v1/accounts/{account.id}/sync", headers=bearer(gen_token("viewer")))
    assert r.status_code == 200 and r.json == {"items": []}
    assert client.get("/api/v1/accounts/999999/sync", headers=bearer(gen_token("viewer"))).status_code == 404


def test_sync_now_retries_a_dead_account(client, ctx):
    """If an account gave up on a platform, can my system ask for a sync now, with fresh
    attempts, and is the job queued at once?"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    get_redis().flushdb()  # forget the routine job of the activation
    db.session.add(SyncState(account_id=account.id, platform="webhook", state="dead", attempts=8,
                             last_error="HTTP 500: boom"))
    db.session.commit()
    h = bearer(gen_token("manager", name="noc"))
    [shown] = client.get(f"/api/v1/accounts/{account.id}/sync", headers=h).json["items"]
    assert (shown["state"], shown["attempts"], shown["last_error"]) == ("dead", 8, "HTTP 500: boom")

    r = client.post(f"/api/v1/accounts/{account.id}/sync", headers=h)
    assert r.status_code == 202
    [shown] = r.json["items"]
    assert (shown["state"], shown["attempts"]) == ("pending", 0)
    assert get_queue("high").job_ids == [f"reconcile-webhook-{account.id}-high"]
    entry = db.session.scalar(select(AuditEntry).filter_by(action="platform.sync_request"))
    assert (entry.actor, entry.object_id) == ("api:noc", account.id)


def test_sync_now_needs_a_manager(client, ctx):
    """May a viewer token start a sync? (It may only look.)"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    r = client.post(f"/api/v1/accounts/{account.id}/sync", headers=bearer(gen_token("viewer")))
    assert r.status_code == 403
