"""Billing -> Stalker: accounts on a Stalker agent reconciled against the emulator over real
HTTP (in-process, and with the real worker)."""
from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import directory, ledger
from portal.extensions import db
from portal.models import AuditEntry, StalkerStb, StalkerTvId, SyncState, Tariff
from portal.platforms.connections import load
from portal.platforms.reconcile import reconcile_account, request_sync, sync_states
from portal.platforms.stalker.client import StalkerClient
from tests.builders import gen_account, gen_contract, gen_service, gen_subscriber
from tests.platform_fixtures import wait_for
from tests.stalker_fixtures import API_PASSWORD


def plan_tariff(external_id=9002, services=(), name=None):
    """A billing tariff whose id is a Stalker plan's external_id."""
    t = directory.save_tariff({"name": name or f"TV {external_id}", "monthly_fee": "0",
                               "service_ids": [s.id for s in services]},
                              actor="test", tariff=Tariff(id=external_id, name="", kind="services", is_multi=False))
    db.session.commit()
    return t


def test_activation_creates_the_account_with_billing_data(stalker, tv_agent):
    """When a TV account is activated, does Stalker get it with login, password, name, phone,
    TV ID as account number, the plan, status 1, the STB and the balance?"""
    contract = gen_contract(subscriber=gen_subscriber(full_name="Ким Анна", phones=["+7 911 000-00-01"]))
    ledger.payment(contract.id, Decimal("250.50"), actor="test", external_id="p-1")
    db.session.commit()
    account = gen_account(contract=contract, agent=tv_agent, tariff=plan_tariff(9002), activate=False,
                          login="kim_tv", password="kim-secret")
    db.session.add(StalkerStb(account_id=account.id, mac="00:1A:79:AA:BB:01", serial="SN1"))
    db.session.commit()
    acc.activate(account, actor="test")
    db.session.commit()

    assert reconcile_account("stalker", account.id) == "ok"
    user = stalker.find(login="kim_tv")
    assert user["ls"] == str(account.id) and user["full_name"] == "Ким Анна" and user["phone"] == "+7 911 000-00-01"
    assert stalker.plans[user["plan_id"]]["external_id"] == "9002"
    assert (user["status"], user["mac"], user["account_balance"]) == (1, "00:1A:79:AA:BB:01", "250.50")
    assert stalker.check_password("kim_tv", "kim-secret")
    # nothing secret in the audit log or the sync state
    text = json.dumps([[e.summary, e.after] for e in db.session.scalars(select(AuditEntry))])
    state = db.session.scalar(select(SyncState))
    assert "kim-secret" not in text + json.dumps([state.desired, state.actual]) and API_PASSWORD not in text


def test_block_sends_only_the_status_and_unblock_brings_it_back(stalker, tv_agent):
    """A manager blocks the account: does Stalker get `status=0` alone, on the bound user (the
    STB is cut off), and status 1 again on unblock?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    db.session.add(StalkerTvId(account_id=account.id, tv_id=4242))
    db.session.commit()
    reconcile_account("stalker", account.id)
    stalker.requests.clear()
    acc.block(account, "manager", actor="test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"
    [put] = [r for r in stalker.requests if r["method"] == "PUT"]
    assert (put["resource"], put["ids"], put["fields"]) == ("users", [account.login], {"status": "0"})
    assert stalker.find(login=account.login)["status"] == 0
    assert {"mac": "", "event": "cut_off"} in stalker.events
    acc.unblock(account, "manager", actor="test")
    db.session.commit()
    reconcile_account("stalker", account.id)
    assert stalker.find(login=account.login)["status"] == 1


def test_a_plan_stalker_lacks_is_not_sent(stalker, tv_agent):
    """If the tariff has no Stalker plan with its id, does the sync state say so instead of
    Stalker quietly giving the default plan?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(7000))
    assert reconcile_account("stalker", account.id) == "retry"
    [shown] = sync_states(account.id)
    assert shown["last_error"].startswith("tariff_plan: tariff «TV 7000»: Stalker has no plan with external_id 7000")
    assert stalker.find(login=account.login) is None


def test_tariff_change_and_packages_reach_stalker(stalker, tv_agent):
    """Changing the tariff and assigning the «Спорт» package: does Stalker show the new plan
    and the subscription?"""
    sport = gen_service("149.00", name="Спорт", platform="stalker", external_id="pkg_sport")
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    reconcile_account("stalker", account.id)
    acc.update_account(account, {"tariff_id": plan_tariff(9003, [sport]).id}, actor="test")
    acc.assign_service(account, {"service_id": sport.id}, actor="test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"
    row = StalkerClient(load("stalker")).account(str(account.id))[0]
    assert (row["tariff_plan"], row["subscribed"]) == ("9003", ["pkg_sport"])


def test_disable_deletes_and_a_missing_account_counts_as_deleted(stalker, tv_agent):
    """Disabling removes the account from Stalker; if it is gone already, is that fine too?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    reconcile_account("stalker", account.id)
    acc.disable(account, actor="test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login=account.login) is None
    assert reconcile_account("stalker", account.id) == "ok"


def test_a_refusal_is_shown_with_stalkers_words(stalker, tv_agent):
    """When Stalker refuses (a MAC another user has), does the account show Stalker's text and
    whose the MAC is, as a conflict for staff (not retried)?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    db.session.add(StalkerStb(account_id=account.id, mac="00:1A:79:00:00:01"))  # tv_petrov's
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "conflict"
    error = sync_states(account.id)[0]["last_error"]
    assert error.startswith("MAC address already in use") and "«tv_petrov» (account number 501)" in error


def test_a_block_while_stalker_is_down_arrives_when_it_is_back(app, stalker, tv_agent, processes):
    """Stalker is down when a manager blocks the account: once it is back, does the worker's
    retry bring the block to Stalker?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    aid, login = account.id, account.login
    processes.start("jobs.worker")
    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)
    wait_for(lambda: (stalker.find(login=login) or {}).get("status") == 1, what="the account in Stalker")
    stalker.down()
    acc.block(db.session.get(type(account), aid), "manager", actor="test")
    db.session.commit()
    wait_for(lambda: db.session.scalar(select(SyncState.state).filter_by(account_id=aid)) == "retry",
             what="a failed attempt")
    assert "ConnectionError" in db.session.scalar(select(SyncState.last_error).filter_by(account_id=aid))
    stalker.up()
    wait_for(lambda: stalker.find(login=login)["status"] == 0, what="the block in Stalker")
    wait_for(lambda: db.session.scalar(select(SyncState.state).filter_by(account_id=aid)) == "ok", what="ok")


def test_sync_now_reads_stalker_when_billing_has_not_changed(stalker, tv_agent, processes):
    """Another platform: an account is synced, then someone sets it to status 0 in Stalker's
    admin. Billing has not changed; does "sync now" read Stalker and put status 1 back?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    db.session.add(StalkerTvId(account_id=account.id, tv_id=5151))
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"
    with stalker._lock:
        stalker.find(login=account.login)["status"] = 0  # switched off in Stalker's own admin
    stalker.requests.clear()
    request_sync(account.id, "staff:test")
    db.session.commit()
    processes.start("jobs.worker")
    wait_for(lambda: stalker.find(login=account.login)["status"] == 1, what="status 1 again")
    assert any(r["method"] == "GET" and r["resource"] == "users" for r in stalker.requests)
    aid = account.id
    wait_for(lambda: str((db.session.scalar(select(SyncState).filter_by(account_id=aid, platform="stalker")).actual
                          or {}).get("status")) == "1", what="the sync state to show what Stalker has")
