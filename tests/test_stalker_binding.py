"""Issue 13 against the emulator over real HTTP (and the real worker where the flow uses one):
the sync acts only on the Stalker user an account is bound to (fault 1), never takes over a
stranger's user (fault 2), sends each field on its own (fault 3), judges packages by reading
the account back (fault 4, sync side) and writes as little as it must, a password only when it
changed (fault 6)."""
from __future__ import annotations

import importlib
import re
from datetime import date
from decimal import Decimal

import flask_babel
import pytest
from sqlalchemy import delete, select

from portal.billing import accounts as acc
from portal.billing import charging, clock, directory, ledger
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import (
    Account,
    CatalogService,
    StalkerBinding,
    StalkerSnapshotRow,
    StalkerStb,
    StalkerTvId,
    SyncState,
    Tariff,
)
from portal.platforms.reconcile import reconcile_account, request_sync
from portal.platforms.stalker import binding, console
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_staff, gen_subscriber
from tests.helpers import HX, login, post
from tests.platform_fixtures import unprocessed, wait_for


def plan_tariff(external_id=9001, services=(), name=None, fee="0"):
    """A billing tariff whose id is a Stalker plan's external_id (the rule for tariffs made by hand)."""
    t = directory.save_tariff({"name": name or f"TV {external_id}", "monthly_fee": fee,
                               "service_ids": [s.id for s in services]},
                              actor="test", tariff=Tariff(id=external_id, name="", kind="services", is_multi=False))
    db.session.commit()
    return t


def puts(emu) -> list[dict]:
    return [r for r in emu.requests if r["method"] in ("PUT", "POST", "DELETE")]


def state(account_id) -> SyncState:
    db.session.rollback()
    return db.session.scalar(select(SyncState).filter_by(account_id=account_id, platform="stalker"))


@pytest.fixture
def staff(client, ctx):
    gen_staff("adm", role="admin")
    login(client, "adm")
    with client.session_transaction() as session:
        session["lang"] = "en"
    flask_babel.refresh()
    return client


# -- fault 1: the bound identity --------------------------------------------------------------------

def test_disabling_an_imported_account_removes_the_stalker_user_it_is_bound_to(stalker, tv_agent, processes):
    """«+» on Stalker user romashka, whose login billing has already, makes romashka-tv bound to
    romashka. When the account is disabled, does the worker delete romashka from Stalker (not
    look up romashka-tv and call it done)?"""
    stalker.add_user("romashka", "880", "9001", 1, "00:1A:79:00:08:80", "rom-pass", full_name="Ромашка")
    gen_account(login="romashka", agent=gen_agent(kind="radius"))
    account = gen_account(login="romashka-tv", agent=tv_agent, tariff=plan_tariff(9001), password=None)
    db.session.add(StalkerTvId(account_id=account.id, tv_id=880, login="romashka"))
    db.session.add(StalkerStb(account_id=account.id, mac="00:1A:79:00:08:80"))
    binding.bind(account.id, login="romashka", account_number="880", mac="00:1A:79:00:08:80")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login="romashka")["status"] == 1 and stalker.find(login="romashka-tv") is None
    aid = account.id
    processes.start("jobs.worker")
    acc.disable(account, actor="test")
    db.session.commit()
    # the pass that covers the disable is done when its outbox rows are processed (the account
    # page stops showing "syncing"): the state was "ok" already from the pass above, and romashka
    # is gone from Stalker before that pass forgets the binding
    wait_for(lambda: not unprocessed([aid]), what="the pass that covers the disable")
    assert state(aid).state == "ok" and state(aid).desired is None  # billing wants no Stalker user
    assert stalker.find(login="romashka") is None
    assert [(r["method"], r["resource"], r["ids"]) for r in puts(stalker)][-1] == ("DELETE", "users", ["romashka"])
    assert db.session.get(StalkerBinding, aid) is None  # nothing bound any more


def test_an_account_is_bound_to_the_user_billing_created_and_found_by_it(stalker, tv_agent):
    """After billing creates the user, does the account show it as bound, and does a later
    pass find it by that binding even when billing's login changed meanwhile?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    assert reconcile_account("stalker", account.id) == "ok"
    bound = db.session.get(StalkerBinding, account.id)
    assert (bound.state, bound.login, bound.account_number, bound.how) == ("bound", account.login,
                                                                         str(account.id), "created")
    users = len(stalker.users)
    request_sync(account.id, "staff:test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok" and len(stalker.users) == users


def test_a_create_whose_answer_was_lost_is_not_a_conflict_with_ourselves(stalker, tv_agent):
    """Billing sent the create and Stalker made the user, but the answer never came back: does
    the next pass take that user as ours (its login and account number) instead of calling it
    a stranger?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    binding.record_creating(account.id, account.login, str(account.id))  # as the pass does before its POST
    stalker.add_user(account.login, str(account.id), "9001", 1)  # what the lost POST did
    assert reconcile_account("stalker", account.id) == "ok"
    assert [u["login"] for u in stalker.users.values()].count(account.login) == 1
    assert db.session.get(StalkerBinding, account.id).state == "bound"


def test_accounts_synced_before_bindings_are_bound_by_the_migration(stalker, tv_agent):
    """Accounts synced before this release (and one added by «+» but not synced yet): does the
    migration bind each to the user the old rule found, so that the next pass changes that user
    and creates nobody?"""
    synced = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    assert reconcile_account("stalker", synced.id) == "ok"
    stalker.add_user("kino_fan", "990", "9001", 1, "00:1A:79:00:09:90", "x", full_name="Кинолюб")
    imported = gen_account(login="kino_fan-tv", agent=tv_agent, tariff=plan_tariff(9002), password=None)
    db.session.add(StalkerTvId(account_id=imported.id, tv_id=990, login="kino_fan"))
    db.session.commit()
    db.session.execute(delete(StalkerBinding))  # as before the migration
    db.session.commit()
    migration = importlib.import_module("migrations.versions.1a13c0b2d4e5_stalker_binding")
    migration._bind_existing(db.session.connection())
    db.session.commit()
    rows = {b.account_id: (b.login, b.account_number, b.how) for b in db.session.scalars(select(StalkerBinding))}
    assert rows == {synced.id: (synced.login, str(synced.id), "migrated"),
                    imported.id: ("kino_fan", "990", "migrated")}
    users = len(stalker.users)
    assert reconcile_account("stalker", imported.id) == "ok"
    user = stalker.find(login="kino_fan")
    assert len(stalker.users) == users and user["full_name"] == imported.contract.subscriber.full_name
    assert stalker.plans[user["plan_id"]]["external_id"] == "9002"


# -- fault 2: no takeover ---------------------------------------------------------------------------

def test_a_login_a_stranger_has_is_a_conflict_and_nothing_is_written(stalker, tv_agent, staff):
    """A new billing account whose login Stalker user tv_petrov has: is the state «conflict»
    (not retried), tv_petrov untouched (number, name, MAC, password), and does the account page
    show that user with "link" and "change login"?"""
    account = gen_account(login="tv_petrov", agent=tv_agent, tariff=plan_tariff(9001), password="other-pw")
    db.session.add(StalkerStb(account_id=account.id, mac="00:1A:79:00:0F:01"))
    db.session.commit()
    before = dict(stalker.find(login="tv_petrov"))
    assert reconcile_account("stalker", account.id) == "conflict"
    assert puts(stalker) == [] and stalker.password_pushes() == 0  # looked first: not even a refused create
    assert stalker.find(login="tv_petrov") == before and stalker.check_password("tv_petrov", "petrov1")
    st = state(account.id)
    assert st.next_attempt_at is None and "Login already in use" in st.last_error
    page = staff.get(f"/accounts/{account.id}").get_data(as_text=True)
    panel = page[page.index('id="account-stalker"'):]
    assert "Login already in use" in panel and "Петров Пётр" in panel and "501" in panel
    assert "Link to this account" in panel and "Change login" in panel
    # the console shows that user as a conflict of this account, not as "in billing"
    from portal.platforms.stalker import console

    console.refresh(("accounts",), actor="test")
    db.session.commit()
    rows = staff.get("/stalker?tab=accounts&q=tv_petrov&lang=en").get_data(as_text=True)
    cell = re.search(r'<td class="stalker-billing"[^>]*>(.*?)</td>', rows, re.S).group(1)
    assert f'data-conflict="{account.id}"' in cell and "conflict: tv_petrov" in cell
    assert f'href="/accounts/{account.id}" class="btn btn-small"' not in cell


def test_change_login_creates_the_user_under_the_new_login(stalker, tv_agent, staff):
    """Staff give the account another Stalker login: does the next pass create a user with it,
    leaving tv_petrov alone?"""
    account = gen_account(login="tv_petrov", agent=tv_agent, tariff=plan_tariff(9001))
    assert reconcile_account("stalker", account.id) == "conflict"
    taken = post(staff, f"/accounts/{account.id}/stalker/login", {"login": "tv_sidorova"}, headers=HX)
    assert taken.status_code == 200  # a Stalker login is not billing's to refuse: the next pass will say
    r = post(staff, f"/accounts/{account.id}/stalker/login", {"login": "bad login!"}, headers=HX)
    assert r.status_code == 422 and 'data-field="login"' in r.get_data(as_text=True)
    r = post(staff, f"/accounts/{account.id}/stalker/login", {"login": "petrov-tv"}, headers=HX)
    assert r.status_code == 200 and "petrov-tv" in r.get_data(as_text=True)
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login="petrov-tv")["ls"] == str(account.id)
    assert stalker.find(login="tv_petrov")["ls"] == "501"
    assert db.session.get(StalkerBinding, account.id).login == "petrov-tv"


def test_link_writes_billings_data_onto_the_user_staff_confirmed(stalker, tv_agent, staff):
    """Staff confirm tv_petrov is this subscriber: after "link" and the sync, does tv_petrov carry
    billing's name, number and password, keep its STB, and is it bound («linked»)?"""
    contract = gen_contract(subscriber=gen_subscriber(full_name="Петров Пётр Петрович"))
    account = gen_account(contract=contract, login="tv_petrov", agent=tv_agent, tariff=plan_tariff(9001),
                          password="new-secret")
    assert reconcile_account("stalker", account.id) == "conflict"
    r = post(staff, f"/accounts/{account.id}/stalker/link", {}, headers=HX)
    assert r.status_code == 200 and 'data-binding="bound"' in r.get_data(as_text=True)
    assert reconcile_account("stalker", account.id) == "ok"
    user = stalker.find(login="tv_petrov")
    assert (user["full_name"], user["ls"], user["mac"]) == ("Петров Пётр Петрович", str(account.id),
                                                            "00:1A:79:00:00:01")
    assert stalker.check_password("tv_petrov", "new-secret")
    assert db.session.get(StalkerBinding, account.id).how == "linked"


def test_a_mac_a_stranger_has_is_not_written_but_the_rest_is(stalker, tv_agent):
    """A bound account gets an STB whose MAC Stalker user tv_sidorova has, and is blocked: does
    the block reach Stalker while the MAC is not sent (Stalker does not check MACs on PUT) and
    the state says whose the MAC is?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    assert reconcile_account("stalker", account.id) == "ok"
    db.session.add(StalkerStb(account_id=account.id, mac="00:1A:79:00:00:02"))
    acc.block(account, "manager", actor="test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "conflict"
    mine = stalker.find(login=account.login)
    assert (mine["status"], mine["mac"]) == (0, "")
    assert stalker.find(login="tv_sidorova")["mac"] == "00:1A:79:00:00:02"
    assert "«tv_sidorova»" in state(account.id).last_error
    conflict = db.session.get(StalkerBinding, account.id).conflict  # kept for the account page
    assert conflict["user"]["login"] == "tv_sidorova" and conflict["reason"] == "MAC address already in use"
    with pytest.raises(BillingError):  # the account has its own user: not re-linked to the MAC's holder
        binding.link(account.id, actor="test")


# -- fault 3: independent fields --------------------------------------------------------------------

def test_a_block_reaches_stalker_though_the_tariff_has_no_plan(stalker, tv_agent):
    """The account's tariff has no Stalker plan (set before billing could know): does a manager
    block still reach Stalker, with the pass failing on the plan and naming the tariff?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    assert reconcile_account("stalker", account.id) == "ok"
    acc.update_account(account, {"tariff_id": plan_tariff(7000, name="Без плана").id}, actor="test")
    acc.block(account, "manager", actor="test")
    db.session.commit()
    stalker.requests.clear()
    assert reconcile_account("stalker", account.id) == "retry"
    user = stalker.find(login=account.login)
    assert user["status"] == 0 and stalker.plans[user["plan_id"]]["external_id"] == "9001"
    [put] = puts(stalker)
    assert "tariff_plan" not in put["fields"] and put["fields"]["status"] == "0"
    assert state(account.id).last_error.startswith("tariff_plan: tariff «Без плана»")


def test_billing_refuses_a_tariff_stalker_has_no_plan_for(stalker, tv_agent, staff):
    """Once billing has seen Stalker's plans, is a change to a tariff with no Stalker plan
    refused with the tariff named, and one with a plan accepted?"""
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9001))
    console.refresh(("tariffs",), actor="test")
    lacking = plan_tariff(7000, name="Без плана")
    with pytest.raises(BillingError) as e:
        acc.update_account(account, {"tariff_id": lacking.id}, actor="test")
    assert "«Без плана»" in e.value.fields["tariff_id"]
    db.session.rollback()
    acc.update_account(account, {"tariff_id": plan_tariff(9003).id}, actor="test")
    db.session.commit()
    assert db.session.get(Account, account.id).tariff_id == 9003
    # an account that is not on Stalker may have any tariff
    other = gen_account(agent=gen_agent(kind="radius"))
    acc.update_account(other, {"tariff_id": lacking.id}, actor="test")


# -- fault 4 (sync side): packages judged by reading back -------------------------------------------

def test_a_package_the_plan_does_not_allow_is_shown_not_retried(stalker, tv_agent, staff):
    """«Кино» is not optional in plan 9002: Stalker answers results:false. Is the pass ok with
    «Кино» listed as not in the plan (on the account page too), while «Спорт» is subscribed?"""
    sport = gen_service("149.00", name="Спорт", platform="stalker", external_id="pkg_sport", iptv_kind="additional")
    kino = gen_service("199.00", name="Кино", platform="stalker", external_id="pkg_kino", iptv_kind="additional")
    account = gen_account(agent=tv_agent, tariff=plan_tariff(9002, [sport, kino]), services=[sport, kino])
    assert reconcile_account("stalker", account.id) == "ok"
    st = state(account.id)
    assert st.actual["subscribed"] == ["pkg_sport"] and st.actual["not_in_plan"] == ["pkg_kino"]
    page = staff.get(f"/accounts/{account.id}").get_data(as_text=True)
    panel = page[page.index('id="account-stalker"'):]
    assert "pkg_kino" in panel[:panel.index("</section>")]
    request_sync(account.id, "staff:test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"  # not a failure, however often it runs


def test_with_the_plans_imported_only_their_optional_packages_are_sent(stalker, tv_agent):
    """Plans imported with their packages: an account on plan 9003 has «Спорт» and «Кино»; then
    Stalker's admin makes «Кино» mandatory in 9003 and staff re-sync the plan. Is «Кино» never
    sent (listed as not in the plan), the mandatory «Базовый» never sent either, and the pass ok?
    (A tariff change to a plan without «Кино» ends the service in billing: test_stalker_catalog.)"""
    console.refresh(("tariffs",), actor="test")
    for ext in ("9002", "9003"):
        console.import_tariff(db.session.scalar(select(StalkerSnapshotRow.id).filter_by(kind="tariffs", key=ext)),
                              actor="test")
    db.session.commit()
    services = {s.external_id: s for s in db.session.scalars(select(CatalogService).filter_by(platform="stalker"))}
    assert "pkg_base" not in services  # mandatory: comes with the plan
    account = gen_account(agent=tv_agent, tariff=db.session.get(Tariff, 9003),
                          services=[services["pkg_sport"], services["pkg_kino"]])
    assert reconcile_account("stalker", account.id) == "ok"
    assert sorted(state(account.id).actual["subscribed"]) == ["pkg_kino", "pkg_sport"]
    plan = next(p for p in stalker.plans.values() if p["external_id"] == "9003")
    kino = next(p["id"] for p in stalker.packages.values() if p["external_id"] == "pkg_kino")
    plan["packages"] = [(pid, opt and pid != kino) for pid, opt in plan["packages"]]
    console.refresh(("tariffs",), actor="test")
    console.import_tariff(db.session.scalar(select(StalkerSnapshotRow.id).filter_by(kind="tariffs", key="9003")),
                          actor="test")
    db.session.commit()
    stalker.requests.clear()
    assert reconcile_account("stalker", account.id) == "ok"
    assert state(account.id).actual["not_in_plan"] == ["pkg_kino"]
    sent = [r for r in puts(stalker) if r["resource"] == "account_subscription"]
    assert all("pkg_kino" not in str(r["fields"]) and "pkg_base" not in str(r["fields"]) for r in sent)


# -- fault 6: minimal writes, the password only when it changed --------------------------------------

def test_block_and_unblock_send_the_status_and_the_password_goes_once(stalker, tv_agent):
    """Is the password in Stalker's access log once after create, block, unblock and "sync now",
    again once after it changed, and does a block that refunds send status and balance only?"""
    contract = gen_contract()
    ledger.payment(contract.id, Decimal("500.00"), actor="test", external_id="p-1")
    db.session.commit()
    account = gen_account(contract=contract, agent=tv_agent, tariff=plan_tariff(9001), password="first-pw")
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.password_pushes() == 1
    for change in (lambda a: acc.block(a, "manager", actor="test"), lambda a: acc.unblock(a, "manager", actor="test")):
        stalker.requests.clear()
        change(account)
        db.session.commit()
        assert reconcile_account("stalker", account.id) == "ok"
        [put] = puts(stalker)
        assert set(put["fields"]) <= {"status", "account_balance"} and "status" in put["fields"]
    stalker.requests.clear()
    request_sync(account.id, "staff:test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok" and puts(stalker) == []
    assert stalker.password_pushes() == 1
    acc.update_account(account, {"password": "second-pw"}, actor="test")
    db.session.commit()
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.password_pushes() == 2 and stalker.check_password(account.login, "second-pw")
    assert "second-pw" in stalker.access_log[-1] or any("second-pw" in line for line in stalker.access_log)
    bound = db.session.get(StalkerBinding, account.id)
    assert bound.password_digest and "second-pw" not in bound.password_digest


def test_a_refunding_block_sends_the_status_and_the_new_balance(stalker, tv_agent):
    """A manager block refunds the rest of the month of a fee paid in advance: does Stalker get
    exactly the status and the new balance?"""
    with clock.as_of(date(2026, 11, 16)):
        contract = gen_contract()
        ledger.payment(contract.id, Decimal("1000.00"), actor="test", external_id="p-2")
        db.session.commit()
        account = gen_account(contract=contract, agent=tv_agent, tariff=plan_tariff(9001, fee="300.00"))
        charging.charge(clock.today(), actor="test")
        db.session.commit()
        assert reconcile_account("stalker", account.id) == "ok"
        before = Decimal(stalker.find(login=account.login)["account_balance"])
        stalker.requests.clear()
        acc.block(db.session.get(Account, account.id), "manager", actor="test")
        db.session.commit()
        assert reconcile_account("stalker", account.id) == "ok"
        balance = Decimal(db.session.get(Account, account.id).contract.balance)
        [put] = puts(stalker)
        assert put["fields"] == {"status": "0", "account_balance": f"{balance:.2f}"}
        assert balance == before + Decimal("300.00") * 15 / 30  # 16-30 November given back


def test_a_login_another_billing_account_is_bound_to_is_a_conflict_before_any_call(stalker, tv_agent):
    """romashka-tv is bound to Stalker user romashka; the non-TV account romashka moves to the TV
    agent: is that a conflict before anything is sent (romashka stays romashka-tv's)?"""
    stalker.add_user("romashka", "880", "9001", 1, "", "rom-pass", full_name="Ромашка")
    tariff = plan_tariff(9001)
    plain = gen_account(login="romashka", agent=gen_agent(kind="radius"), tariff=tariff)
    tv = gen_account(login="romashka-tv", agent=tv_agent, tariff=tariff, password=None)
    binding.bind(tv.id, login="romashka", account_number="880")
    db.session.commit()
    acc.update_account(plain, {"agent_id": tv_agent.id}, actor="test")
    db.session.commit()
    stalker.requests.clear()
    assert reconcile_account("stalker", plain.id) == "conflict"
    assert "bound to billing account romashka-tv" in state(plain.id).last_error and puts(stalker) == []
    assert db.session.get(StalkerBinding, plain.id).conflict["reason"] == "Login already in use"
