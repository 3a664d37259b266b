"""«Смотрёшка»: billing's TV state reaches the platform (real HTTP to the emulator, the real
worker where a job runs), and the assignment rules of TV services."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.extensions import db
from portal.models import Account, AuditEntry, SyncState
from portal.platforms.reconcile import reconcile_account
from tests.builders import gen_account, gen_agent, gen_contract, gen_tariff
from tests.platform_fixtures import wait_for
from tests.smotreshka_fixtures import CALLBACK_PASSWORD, connect, tv_account


def on_platform(emu, login, prefix="t_"):
    return emu.by_username(prefix + login)


def live_tv(account_id):
    db.session.rollback()
    account = db.session.get(Account, account_id)
    return sorted(s.service.external_id for s in account.services
                  if s.state != "ended" and s.service.platform == "smotreshka")


def test_an_account_with_tv_is_created_on_the_platform_with_its_subscriptions(smotreshka, tv_catalog):
    """A new TV account: is the platform account created with our prefix, the email rule and
    exactly the account's subscriptions; and does a second pass find it ours (created:false)?"""
    account = tv_account(tv_catalog, ["101", "201"])
    assert reconcile_account("smotreshka", account.id) == "ok"
    found = on_platform(smotreshka, account.login)
    assert found["subscriptions"] == {"101", "201"}
    assert found["email"] == f"{account.id}@isp.users-mail.lfstrm.tv"  # no email: the template
    assert found["info"]["billing_account_id"] == str(account.id)
    st = db.session.scalar(select(SyncState).filter_by(account_id=account.id, platform="smotreshka"))
    assert st.actual["id"] == found["id"]
    # the platform account is lost on our side: create-or-get answers with the same id
    st.actual = None
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert len(smotreshka.accounts) == 1
    audit = " ".join(e.summary + str(e.after) for e in db.session.scalars(select(AuditEntry)))
    assert CALLBACK_PASSWORD not in audit


def test_the_subscribers_email_is_used_lowercased(smotreshka, tv_catalog):
    """A subscriber with an email: the platform gets it in lowercase (the platform requires it)."""
    account = tv_account(tv_catalog, ["101"], email="Maria.Volkova@Example.RU")
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert on_platform(smotreshka, account.login)["email"] == "maria.volkova@example.ru"


def test_a_username_of_another_provider_is_an_error_shown_to_staff(smotreshka, tv_catalog):
    """Usernames are global: if another provider owns ours, the sync says so and retries."""
    account = tv_account(tv_catalog, ["101"])
    smotreshka.foreign["t_" + account.login] = "other"
    assert reconcile_account("smotreshka", account.id) == "retry"
    st = db.session.scalar(select(SyncState).filter_by(account_id=account.id, platform="smotreshka"))
    assert "belongs to other provider" in st.last_error


def test_a_second_basic_replaces_the_first(smotreshka, tv_catalog):
    """An account holds one basic: assigning another ends the first (refunded), and the
    platform ends up with only the new basic and the additional ones."""
    account = tv_account(tv_catalog, ["101", "201"])
    reconcile_account("smotreshka", account.id)
    acc.assign_service(account, {"service_id": tv_catalog["102"].id}, actor="test")
    db.session.commit()
    assert live_tv(account.id) == ["102", "201"]
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert on_platform(smotreshka, account.login)["subscriptions"] == {"102", "201"}
    # the old basic was disabled before the new one was enabled
    toggles = [r["path"] for r in smotreshka.requests if r["method"] == "POST" and r["path"].endswith("/subscriptions")]
    assert len(toggles) == 2
    # additional ones are unlimited
    acc.assign_service(db.session.get(Account, account.id), {"service_id": tv_catalog["202"].id}, actor="test")
    db.session.commit()
    assert live_tv(account.id) == ["102", "201", "202"]


def test_blocking_disables_the_subscriptions_and_unblocking_restores_them(smotreshka, tv_catalog):
    """A manager's block empties the platform account and pushes account-state when it is on;
    the unblock brings the subscriptions back."""
    connect(smotreshka, account_state="on")
    account = tv_account(tv_catalog, ["101", "202"])
    reconcile_account("smotreshka", account.id)
    acc.block(account, "manager", actor="test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    pid = on_platform(smotreshka, account.login)["id"]
    assert on_platform(smotreshka, account.login)["subscriptions"] == set()
    assert smotreshka.states[pid]["status"] == "other" and smotreshka.states[pid]["tvSuspended"] is True
    acc.unblock(db.session.get(Account, account.id), "manager", actor="test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert on_platform(smotreshka, account.login)["subscriptions"] == {"101", "202"}
    assert smotreshka.states[pid]["status"] == "active"


def test_a_balance_block_suspends_for_funds_with_the_refill_needed(smotreshka, tv_catalog):
    """Out of money: the platform hears suspended_no_funds with the amount to top up."""
    connect(smotreshka, account_state="on")
    account = tv_account(tv_catalog, ["102"], money="100.00")  # 600 a month: the balance goes negative
    db.session.rollback()
    account = db.session.get(Account, account.id)
    assert account.status == "blocked" and account.reasons == ["balance"]
    assert reconcile_account("smotreshka", account.id) == "ok"
    found = on_platform(smotreshka, account.login)
    state = smotreshka.states[found["id"]]
    assert state["status"] == "suspended_no_funds" and state["recommendedRefill"] == -state["balance"] > 0
    assert found["subscriptions"] == set()


def test_an_ended_or_expired_service_is_disabled(smotreshka, tv_catalog):
    """Ending a TV service (or letting it expire) takes it off the platform."""
    account = tv_account(tv_catalog, ["101", "201", "202"])
    reconcile_account("smotreshka", account.id)
    kino = next(s for s in account.services if s.service.external_id == "201")
    acc.end_service(kino, actor="test")
    db.session.commit()
    reconcile_account("smotreshka", account.id)
    assert on_platform(smotreshka, account.login)["subscriptions"] == {"101", "202"}
    from datetime import date, timedelta

    kids = next(s for s in db.session.get(Account, account.id).services if s.service.external_id == "202")
    kids.ends_on = date.today() - timedelta(days=3)  # expired (the charge run marks it ended later)
    db.session.commit()
    from portal.platforms.smotreshka import console

    console.push(account.id, "test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert on_platform(smotreshka, account.login)["subscriptions"] == {"101"}


def test_disabling_the_account_archives_it_and_activating_brings_it_back(smotreshka, tv_catalog):
    """Disable: the platform account goes to the archive (later calls get 403). Activate again:
    the same username is POSTed, the archive gives it back with its subscriptions."""
    account = tv_account(tv_catalog, ["101"])
    reconcile_account("smotreshka", account.id)
    acc.disable(account, actor="test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    found = on_platform(smotreshka, account.login)
    assert found["archived"] and found["subscriptions"] == set()
    acc.activate(db.session.get(Account, account.id), actor="test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    again = on_platform(smotreshka, account.login)
    assert again["id"] == found["id"] and not again["archived"] and again["subscriptions"] == {"101"}


def test_switching_between_internet_tariffs_keeps_tv(smotreshka, tv_catalog):
    """Way 2: internet tariffs that offer TV. Switching the account from one to the other keeps
    every TV subscription, in billing and on the platform."""
    tv = list(tv_catalog.values())
    t100 = gen_tariff(tv, kind="internet", monthly_fee="500.00", name="Интернет 100 + ТВ")
    t300 = gen_tariff(tv[:2], kind="internet", monthly_fee="800.00", name="Интернет 300 + ТВ")
    account = tv_account(tv_catalog, ["101", "201"], money="3000.00", tariff=t100, agent=gen_agent("radius"))
    reconcile_account("smotreshka", account.id)
    acc.update_account(account, {"tariff_id": t300.id}, actor="test")
    db.session.commit()
    assert live_tv(account.id) == ["101", "201"]
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert on_platform(smotreshka, account.login)["subscriptions"] == {"101", "201"}


def test_a_tv_multi_tariff_survives_a_main_tariff_change_without_a_platform_call(smotreshka, tv_catalog):
    """Way 3: TV services through a multi-tariff on an internet account. Changing the main
    tariff leaves the TV running and the platform is not called at all."""
    packs = gen_tariff(list(tv_catalog.values()), kind="services", is_multi=True, name="ТВ-пакеты")
    inet50, inet100 = (gen_tariff([], kind="internet", monthly_fee=f, name=n)
                       for f, n in (("400.00", "Интернет 50"), ("500.00", "Интернет 100")))
    account = tv_account(tv_catalog, ["102", "202"], money="5000.00", tariff=inet50, agent=gen_agent("radius"),
                         multi_tariff_ids=[packs.id])
    assert reconcile_account("smotreshka", account.id) == "ok"
    seen = len(smotreshka.requests)
    acc.update_account(db.session.get(Account, account.id), {"tariff_id": inet100.id}, actor="test")
    db.session.commit()
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert live_tv(account.id) == ["102", "202"]
    assert len(smotreshka.requests) == seen  # no platform call
    assert on_platform(smotreshka, account.login)["subscriptions"] == {"102", "202"}


def test_the_platform_down_during_a_block_converges_after(smotreshka, tv_catalog, processes, app):
    """The platform is down while a manager blocks the account: the worker retries and, once
    the platform is back, its subscriptions are gone as billing wants."""
    account = tv_account(tv_catalog, ["101", "201"])
    reconcile_account("smotreshka", account.id)
    smotreshka.down()
    processes.start("jobs.worker")
    acc.block(db.session.get(Account, account.id), "manager", actor="test")
    db.session.commit()
    aid = account.id
    wait_for(lambda: (st := db.session.scalar(select(SyncState).filter_by(account_id=aid, platform="smotreshka")))
             and st.state == "retry", what="a failed attempt")
    smotreshka.up()
    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)
    wait_for(lambda: db.session.scalar(select(SyncState)
                                       .filter_by(account_id=aid, platform="smotreshka")).state == "ok",
             timeout=60, what="the sync to converge")
    assert on_platform(smotreshka, account.login)["subscriptions"] == set()


def test_a_payment_that_lifts_the_balance_block_restores_tv_through_the_worker(smotreshka, tv_catalog, processes):
    """Blocked for money, the subscriber pays: the worker re-enables the TV on the platform."""
    account = tv_account(tv_catalog, ["102"], money="100.00")
    processes.start("jobs.worker")
    aid, login = account.id, account.login
    wait_for(lambda: on_platform(smotreshka, login) is not None, what="the platform account")
    ledger.payment(account.contract_id, Decimal("1000.00"), actor="test", external_id="top-up")
    db.session.commit()
    wait_for(lambda: on_platform(smotreshka, login)["subscriptions"] == {"102"}, what="TV back on")
    assert db.session.get(Account, aid).status == "active"


def test_an_internet_only_account_is_not_on_the_platform(smotreshka, tv_catalog):
    """An account without TV services on an internet agent never reaches the platform."""
    account = gen_account(contract=gen_contract(), tariff=gen_tariff(list(tv_catalog.values()), kind="internet"),
                          agent=gen_agent("radius"))
    from portal.billing import outbox

    assert not outbox.on_platform(account.id, "smotreshka")
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert smotreshka.accounts == {}
