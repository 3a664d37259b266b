"""Browser: a manager resolves a Stalker conflict on the account page (Chromium, live server,
real worker, emulator over HTTP): the Stalker user holding the account's login is shown, and
"link to this account" or "change login" lets the worker finish the sync."""
from __future__ import annotations

from playwright.sync_api import expect

from portal.billing import directory
from portal.extensions import db
from portal.models import Tariff
from portal.platforms.reconcile import reconcile_account
from tests.builders import gen_account, gen_contract, gen_staff, gen_subscriber
from tests.platform_fixtures import wait_for


def conflicted_account(tv_agent, name="Петров Пётр Петрович", login="tv_petrov"):
    tariff = directory.save_tariff({"name": "ТВ Стартовый", "monthly_fee": "0"}, actor="test",
                                   tariff=Tariff(id=9001, name="", kind="services", is_multi=False))
    db.session.commit()
    contract = gen_contract(subscriber=gen_subscriber(full_name=name))
    account = gen_account(contract=contract, login=login, agent=tv_agent, tariff=tariff, password="new-secret")
    assert reconcile_account("stalker", account.id) == "conflict"
    return account


def sign_in(page, live):
    gen_staff("manager", role="manager")
    page.goto(f"{live}/login")
    page.fill("input[name=login]", "manager")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")


def test_a_manager_links_the_stalker_user_that_holds_the_login(app, live, page, stalker, tv_agent, processes):
    """The account's login is tv_petrov's in Stalker: does the panel show that user, and after
    "Привязать к этой учётной записи" does Stalker carry billing's name and password?"""
    account = conflicted_account(tv_agent)
    processes.start("jobs.worker")
    sign_in(page, live)
    page.goto(f"{live}/accounts/{account.id}")
    panel = page.locator("#account-stalker")
    expect(panel).to_contain_text("Login already in use")
    expect(panel).to_contain_text("Петров Пётр")  # the Stalker user's name, not billing's
    expect(panel).to_contain_text("501")
    panel.get_by_role("button", name="Привязать к этой учётной записи").click()
    expect(page.locator("#account-stalker[data-binding=bound]")).to_contain_text("tv_petrov")
    wait_for(lambda: stalker.find(login="tv_petrov")["full_name"] == "Петров Пётр Петрович", what="billing's name")
    assert stalker.check_password("tv_petrov", "new-secret")
    page.reload()
    expect(page.locator("#account-stalker")).to_contain_text("привязан сотрудником")


def test_a_manager_gives_the_account_another_stalker_login(app, live, page, stalker, tv_agent, processes):
    """Or the Stalker user is somebody else: after "Сменить логин" to petrov-2, is the account's
    user created under it, and tv_petrov left alone?"""
    account = conflicted_account(tv_agent)
    processes.start("jobs.worker")
    sign_in(page, live)
    page.goto(f"{live}/accounts/{account.id}")
    panel = page.locator("#account-stalker")
    panel.locator("input[name=login]").fill("petrov-2")
    panel.get_by_role("button", name="Сменить логин").click()
    expect(page.locator("#account-stalker")).to_contain_text("будет создан как petrov-2")
    wait_for(lambda: stalker.find(login="petrov-2") is not None, what="the new Stalker user")
    assert stalker.find(login="tv_petrov")["full_name"] == "Петров Пётр"
    page.reload()
    expect(page.locator("#account-stalker[data-binding=bound]")).to_contain_text("petrov-2")
