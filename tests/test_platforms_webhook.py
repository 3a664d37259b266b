"""The webhook platform, reconciled in-process against the emulator over real HTTP."""
from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.extensions import db
from portal.models import AuditEntry, Contract, OutboxEvent, SyncState
from portal.platforms.connections import save_connection
from portal.platforms.reconcile import reconcile_account, sync_states
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_tariff
from tests.platform_fixtures import HOOK_LOGIN, HOOK_PASSWORD


def audit_text() -> str:
    return json.dumps([[e.summary, e.before, e.after] for e in db.session.scalars(select(AuditEntry))])


def test_the_webhook_gets_the_state_billing_wants(webhook):
    """What does the webhook receive for an account: status, block reasons, tariff, services
    with their external ids, and the contract balance?"""
    tv = gen_service("100.00", platform="webhook", external_id="tv-basic")
    contract = gen_contract()
    ledger.payment(contract.id, Decimal("500"), actor="test", external_id="pay-1")
    db.session.commit()
    account = gen_account(contract=contract, agent=gen_agent(platform="webhook"),
                          tariff=gen_tariff([tv], name="Семейный"), services=[tv])
    acc.block(account, "manager", actor="test")
    db.session.commit()

    assert reconcile_account("webhook", account.id) == "ok"
    doc = webhook.states[account.login]
    assert (doc["present"], doc["status"], doc["block_reasons"]) == (True, "blocked", ["manager"])
    assert doc["tariff"]["name"] == "Семейный"
    assert [(s["external_id"], s["state"]) for s in doc["services"]] == [("tv-basic", "active")]
    assert doc["contract"]["balance"] == str(db.session.get(Contract, contract.id).balance)
    assert "password" not in json.dumps(doc)
    assert db.session.scalars(select(OutboxEvent).filter_by(processed_at=None)).all() == []
    [call] = db.session.scalars(select(AuditEntry).filter_by(action="platform.call")).all()
    assert (call.actor, call.object_id, call.after["status"], call.after["url"]) == \
        ("platform:webhook", account.id, 200, webhook.url)
    assert HOOK_PASSWORD not in audit_text()


def test_an_account_that_leaves_the_webhook_is_reported_gone(webhook):
    """If an account moves to an agent without the webhook, is the webhook told it is gone?"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    reconcile_account("webhook", account.id)
    acc.update_account(account, {"agent_id": gen_agent().id}, actor="test")
    db.session.commit()
    assert reconcile_account("webhook", account.id) == "ok"
    assert webhook.states[account.login] == {"login": account.login, "present": False}
    [shown] = sync_states(account.id)
    assert (shown["state"], shown["desired"], shown["actual"]) == ("ok", None, None)


def test_a_wrong_password_shows_the_platforms_refusal_and_not_the_password(ctx, receiver):
    """If the stored password is wrong, does the account show the platform's refusal, with
    no trace of the password anywhere?"""
    save_connection("webhook", url=receiver.url, login=HOOK_LOGIN, password="Wrong-Pa55", actor="test")
    db.session.commit()
    account = gen_account(agent=gen_agent(platform="webhook"))
    assert reconcile_account("webhook", account.id) == "retry"
    [shown] = sync_states(account.id)
    assert "HTTP 401" in shown["last_error"] and "bad credentials" in shown["last_error"]
    assert shown["attempts"] == 1 and shown["next_attempt_at"] is not None
    assert account.login not in receiver.states
    state = db.session.scalar(select(SyncState))
    assert "Wrong-Pa55" not in audit_text() + json.dumps([state.desired, state.actual, state.last_error])


def test_a_platform_without_a_connection_says_so(ctx):
    """If nobody has configured the platform yet, does the account say what is missing?"""
    account = gen_account(agent=gen_agent(platform="webhook"))
    assert reconcile_account("webhook", account.id) == "retry"
    [shown] = sync_states(account.id)
    assert "no enabled connection" in shown["last_error"] and "flask platforms set" in shown["last_error"]


def test_staff_check_the_webhook_connection_from_the_connections_page(webhook, client, processes):
    """Staff press "Check the connection" for the webhook: the receiver takes the check's
    document (a login no account has, marked gone, so it harms nothing), then refuses it, then
    is down; each verdict shows, and the calls are in the audit log without the password."""
    import re

    import flask_babel

    from portal.platforms.webhook.console import CHECK_LOGIN
    from tests.builders import gen_staff
    from tests.helpers import HX, login, post
    from tests.platform_fixtures import wait_for

    gen_staff("boss", role="admin")
    login(client, "boss")
    with client.session_transaction() as session:
        session["lang"] = "en"
    flask_babel.refresh()
    assert 'hx-post="/webhook/check"' in client.get("/connections").get_data(as_text=True)
    processes.start("jobs.worker")

    def check() -> str:
        html = post(client, "/webhook/check", {}, headers=HX).get_data(as_text=True)
        url = re.search(r'hx-get="([^"]+)"', html).group(1)
        return wait_for(lambda: (h := client.get(url).get_data(as_text=True)) and 'data-state="running"' not in h
                        and h, 30, "the check")

    ok = check()
    assert "document accepted" in ok and "not reachable" not in ok
    assert webhook.states[CHECK_LOGIN] == {"login": CHECK_LOGIN, "present": False}
    webhook.fail("no such store", status=500, login=CHECK_LOGIN)
    refused = check()
    assert "document refused" in refused and "HTTP 500" in refused and "no such store" in refused
    webhook.heal()
    webhook.down()
    assert "not reachable" in check()
    db.session.rollback()
    calls = db.session.scalars(select(AuditEntry).filter_by(action="platform.call")).all()
    assert len(calls) == 3 and HOOK_PASSWORD not in audit_text()
