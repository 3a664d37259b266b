"""Changes made on the «Смотрёшка» platform (a subscription switched off by the operator's
manager in the platform's admin, or by the subscriber in its apps) and "sync now" as a forced
read: staff's sync pushes billing's state whatever the connection's option, the scheduled
re-sync accepts, reverts or only reports the change as the option says. The real worker runs
the jobs; the emulator is changed only through its own admin and app functions."""
from __future__ import annotations

import calendar
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.extensions import db
from portal.models import (
    Account,
    AssignedService,
    AuditEntry,
    Contract,
    LedgerEntry,
    PlatformConnection,
    SmotreshkaDrift,
    SyncState,
)
from portal.platforms.reconcile import reconcile_account, request_sync
from portal.platforms.smotreshka import console
from tests.builders import gen_staff
from tests.helpers import HX, post
from tests.helpers import login_in_english as login
from tests.platform_fixtures import wait_for
from tests.smotreshka_fixtures import connect, tv_account


def sync_state(account_id, platform="smotreshka") -> SyncState | None:
    return db.session.scalar(select(SyncState).filter_by(account_id=account_id, platform=platform))


def live_tv(account_id) -> list[str]:
    db.session.rollback()
    return sorted(s.service.external_id for s in db.session.get(Account, account_id).services
                  if s.state != "ended" and s.service.platform == "smotreshka")


def ledger_rows(contract_id) -> int:
    return db.session.scalar(select(func.count()).select_from(LedgerEntry).filter_by(contract_id=contract_id))


def toggles(emu, pid) -> int:
    return sum(1 for r in emu.writes(pid) if r["path"].endswith("/subscriptions"))


def synced_with_kino_switched_off(emu, tv_catalog, by="manager"):
    """An account with «Лайт» and «Кино», synced; then «Кино» is switched off on the platform
    alone. Returns the account and its platform id."""
    account = tv_account(tv_catalog, ["101", "201"], money="3000.00")
    assert reconcile_account("smotreshka", account.id) == "ok"
    pid = emu.by_username("t_" + account.login)["id"]
    if by == "manager":
        emu.admin_switch(pid, "201", on=False)
    else:
        emu.app.switch_off(pid, "201")
    assert emu.accounts[pid]["subscriptions"] == {"101"}
    return account, pid


def scheduled_pass(processes, account_id):
    """The scheduled re-sync, run by the real worker, until the account's pass has recorded."""
    before = sync_state(account_id).synced_at
    db.session.rollback()
    assert console.scheduled_resync() == 1
    processes.start("jobs.worker")
    return wait_for(lambda: (st := sync_state(account_id)) and st.synced_at != before and st.state == "ok"
                    and st.actual["mode"] == "scheduled" and st, timeout=60, what="the scheduled pass")


def test_sync_now_enables_a_subscription_switched_off_on_the_platform(smotreshka, tv_catalog, processes):
    """Staff press "sync now" on an account that looks synchronised while its «Кино» was switched
    off in the platform's admin: is the platform read, «Кино» enabled again (whatever the
    option: the default is accept), and does the sync state show what was read and changed?"""
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog)
    assert sync_state(account.id).state == "ok"
    balance = db.session.get(Contract, account.contract_id).balance
    request_sync(account.id, "staff:test")
    db.session.commit()
    processes.start("jobs.worker")
    wait_for(lambda: smotreshka.accounts[pid]["subscriptions"] == {"101", "201"}, what="«Кино» back on")
    st = wait_for(lambda: (st := sync_state(account.id)) and (st.actual or {}).get("mode") == "manual" and st,
                  what="the manual pass recorded")
    assert st.state == "ok"
    assert st.actual["read"] == ["101"] and st.actual["enabled"] == ["201"] and st.actual["disabled"] == []
    assert st.actual["subscriptions"] == ["101", "201"]
    assert st.actual["platform_changes"] == [{"id": "201", "change": "switched_off", "rule": "revert"}]
    assert live_tv(account.id) == ["101", "201"]  # billing keeps it, no money moved
    assert db.session.get(Contract, account.contract_id).balance == balance
    # undone, so no difference is left to show (no "End in billing" for what the platform has again)
    assert db.session.scalar(select(func.count()).select_from(SmotreshkaDrift).filter_by(account_id=account.id)) == 0


def test_the_scheduled_resync_accepts_the_switch_off_with_the_refund(smotreshka, tv_catalog, processes, app):
    """Default option (accept): the subscriber switched «Кино» off in the app; does the scheduled
    re-sync end the billing service, refunding today and the rest of the month, and leave the
    platform as it is?"""
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog, by="subscriber")
    kino = db.session.scalar(select(AssignedService).filter_by(account_id=account.id, service_id=tv_catalog["201"].id))
    kino_id, contract_id = kino.id, account.contract_id
    balance = db.session.get(Contract, contract_id).balance
    writes = toggles(smotreshka, pid)

    assert console.scheduled_resync() == 1
    processes.start("jobs.worker")
    wait_for(lambda: live_tv(account.id) == ["101"], timeout=60, what="«Кино» ended in billing")
    today = datetime.now(ZoneInfo(app.config["BILLING_TZ"])).date()
    days = calendar.monthrange(today.year, today.month)[1]
    # monthly in advance: ending today refunds today and the rest of the month, pro rata
    refund = (Decimal("150.00") * (days - today.day + 1) / days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    refunds = db.session.scalars(select(LedgerEntry).filter_by(contract_id=contract_id, assigned_service_id=kino_id,
                                                               kind="refund")).all()
    assert [r.amount for r in refunds] == [refund]
    assert db.session.get(Contract, contract_id).balance == balance + refund
    ended = db.session.scalar(select(AuditEntry).filter_by(action="service.end"))
    assert ended.actor == "platform:smotreshka"
    # the pass after it finds billing and the platform agreeing: no toggle, no second refund
    st = wait_for(lambda: (st := sync_state(account.id)) and st.desired["subscriptions"] == ["101"]
                  and st.state == "ok" and st, what="the follow-up pass")
    assert st.actual["subscriptions"] == ["101"] and st.actual["platform_changes"] == []
    assert smotreshka.accounts[pid]["subscriptions"] == {"101"} and toggles(smotreshka, pid) == writes
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).filter_by(
        assigned_service_id=kino_id, kind="refund")) == 1


def test_the_scheduled_resync_reverts_the_switch_off(smotreshka, tv_catalog, processes):
    """Option revert: does the scheduled re-sync enable «Кино» again, billing untouched?"""
    connect(smotreshka, platform_changes="revert")
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog)
    rows = ledger_rows(account.contract_id)
    st = scheduled_pass(processes, account.id)
    assert smotreshka.accounts[pid]["subscriptions"] == {"101", "201"}
    assert st.actual["mode"] == "scheduled" and st.actual["read"] == ["101"] and st.actual["enabled"] == ["201"]
    assert live_tv(account.id) == ["101", "201"] and ledger_rows(account.contract_id) == rows


def test_the_scheduled_resync_only_reports_the_switch_off(smotreshka, tv_catalog, processes, client):
    """Option report: is the switch-off listed in the drift report and on the account's panel
    (with both fixes), with no money moved and no toggle sent, and still listed at the next
    re-sync?"""
    connect(smotreshka, platform_changes="report")
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog)
    rows, writes = ledger_rows(account.contract_id), toggles(smotreshka, pid)
    balance = db.session.get(Contract, account.contract_id).balance
    st = scheduled_pass(processes, account.id)
    assert st.actual["platform_changes"] == [{"id": "201", "change": "switched_off", "rule": "report"}]
    drift = db.session.scalars(select(SmotreshkaDrift).filter_by(account_id=account.id)).all()
    assert [(d.kind, d.external_id) for d in drift] == [("missing_on_platform", "201")]
    assert toggles(smotreshka, pid) == writes and smotreshka.accounts[pid]["subscriptions"] == {"101"}
    assert live_tv(account.id) == ["101", "201"]
    assert ledger_rows(account.contract_id) == rows and db.session.get(Contract, account.contract_id).balance == balance
    gen_staff("mgr", role="manager")
    login(client, "mgr")
    panel = client.get(f"/accounts/{account.id}/smotreshka?lang=en").get_data(as_text=True)
    assert 'data-read="101"' in panel and 'data-change="switched_off" data-rule="report"' in panel
    assert "End in billing" in panel and "Push billing" in panel
    # the next re-sync still tells it from a billing change: listed again, nothing sent
    st = scheduled_pass(processes, account.id)
    assert st.actual["platform_changes"] == [{"id": "201", "change": "switched_off", "rule": "report"}]
    assert toggles(smotreshka, pid) == writes


def test_an_ordinary_change_pass_leaves_the_platforms_change_to_the_schedule(smotreshka, tv_catalog):
    """A billing change on the account (a new additional subscription) while «Кино» is switched
    off on the platform: is only billing's change sent, and the switch-off listed, not undone
    and not taken into billing?"""
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog)
    acc.assign_service(db.session.get(Account, account.id), {"service_id": tv_catalog["202"].id}, actor="test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert smotreshka.accounts[pid]["subscriptions"] == {"101", "202"}
    assert live_tv(account.id) == ["101", "201", "202"]
    st = sync_state(account.id)
    assert st.actual["mode"] == "change" and st.actual["enabled"] == ["202"]
    assert st.actual["platform_changes"] == [{"id": "201", "change": "switched_off", "rule": "report"}]



def test_staff_choose_the_rule_on_the_page_and_a_wrong_value_is_refused(smotreshka, client):
    """On the «Смотрёшка» page a manager sets what the scheduled re-sync does with a switch-off:
    is an unknown value refused naming the field, with nothing stored; is a valid one stored
    and audited?"""
    gen_staff("mgr", role="manager")
    login(client, "mgr")
    page = client.get("/smotreshka?lang=en").get_data(as_text=True)
    assert "Switched off on the platform" in page and 'name="platform_changes"' in page
    r = post(client, "/smotreshka/platform-changes", {"platform_changes": "ignore"}, headers=HX)
    assert r.status_code == 422 and 'data-field="platform_changes"' in r.get_data(as_text=True)
    db.session.rollback()
    assert "platform_changes" not in db.session.scalar(select(PlatformConnection).filter_by(kind="smotreshka")).options
    r = post(client, "/smotreshka/platform-changes", {"platform_changes": "report"}, headers=HX)
    assert r.status_code == 200 and "<html" not in r.get_data(as_text=True)
    db.session.rollback()
    connection = db.session.scalar(select(PlatformConnection).filter_by(kind="smotreshka"))
    assert connection.options["platform_changes"] == "report"
    assert db.session.scalar(select(AuditEntry).filter_by(action="platform.connection.update")).actor == "staff:mgr"


def test_the_drift_report_ends_in_billing_what_the_platform_switched_off(smotreshka, tv_catalog, client, app):
    """The drift report offers both directions for a subscription the platform lacks: does "end
    in billing" end the service with its refund, without any call to the platform?"""
    gen_staff("mgr", role="manager")
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog)
    console.drift_report("test", account.id)
    drift = db.session.scalar(select(SmotreshkaDrift).filter_by(account_id=account.id))
    assert (drift.kind, drift.external_id) == ("missing_on_platform", "201")
    login(client, "mgr")
    html = client.get(f"/accounts/{account.id}/smotreshka?lang=en").get_data(as_text=True)
    assert "End in billing" in html and "Push billing" in html
    balance, calls = db.session.get(Contract, account.contract_id).balance, len(smotreshka.requests)
    r = post(client, f"/smotreshka/drift/{drift.id}/end", {}, headers=HX)
    assert r.status_code == 200
    assert live_tv(account.id) == ["101"]
    today = datetime.now(ZoneInfo(app.config["BILLING_TZ"])).date()
    days = calendar.monthrange(today.year, today.month)[1]
    refund = (Decimal("150.00") * (days - today.day + 1) / days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert db.session.get(Contract, account.contract_id).balance == balance + refund
    assert len(smotreshka.requests) == calls  # the web never calls the platform
    assert db.session.scalar(select(SmotreshkaDrift).filter_by(account_id=account.id)) is None


def test_sync_now_while_the_platform_is_down_still_pushes_billing_when_it_returns(smotreshka, tv_catalog,
                                                                                  processes):
    """Staff press "sync now" while the platform is down: the pass fails and is retried; when the
    platform is back, is the retry still staff's sync (it enables «Кино» again, whatever the
    option) rather than an ordinary change that would only list the difference?"""
    account, pid = synced_with_kino_switched_off(smotreshka, tv_catalog)
    smotreshka.stop()
    request_sync(account.id, "staff:test")
    db.session.commit()
    processes.start("jobs.worker")
    wait_for(lambda: (st := sync_state(account.id)) and db.session.rollback() is None and st.state == "retry",
             what="the failed pass")
    smotreshka.start()  # the same port: the retry reaches it
    processes.start("jobs.scheduler")  # enqueues the due retry
    wait_for(lambda: smotreshka.accounts[pid]["subscriptions"] == {"101", "201"}, timeout=60,
             what="«Кино» back on after the retry")
    st = wait_for(lambda: db.session.rollback() is None and (st := sync_state(account.id)) and st.state == "ok"
                  and st, what="the retry recorded")
    assert st.actual["mode"] == "manual" and live_tv(account.id) == ["101", "201"]
