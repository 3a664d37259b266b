"""Browser: a manager clicks through the Stalker console (Chromium, live server, real worker,
emulator over HTTP): import tariffs, "+" an account, import channels."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, StalkerChannel, Tariff
from portal.platforms.stalker import console
from tests.builders import gen_staff
from tests.platform_fixtures import wait_for
from tests.stalker_fixtures import emulator, stalker, tv_agent  # noqa: F401
from tests.test_browser import browser, live, page, pytestmark  # noqa: F401


def test_a_manager_imports_plans_adds_an_account_and_imports_channels(app, live, page, stalker, tv_agent,
                                                                      processes):
    """Import the plan, "+" tv_petrov (linked afterwards), import channels: as a manager sees it."""
    gen_staff("manager", role="manager")
    console.refresh(actor="test")
    processes.start("jobs.worker")
    shots = Path(app.instance_path)

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "manager")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.click("nav.sidebar >> text=Stalker")
    page.wait_for_selector("#rows >> text=tv_petrov")
    page.screenshot(path=str(shots / "stalker-accounts.png"))

    page.click("a[role=tab] >> nth=4")  # tariff plans
    page.wait_for_selector("#rows >> text=Стартовый")
    page.click("tr:has-text('Стартовый') button.import-tariff")
    page.wait_for_selector("tr:has-text('Стартовый') >> text=#9001")
    page.screenshot(path=str(shots / "stalker-tariffs.png"))
    assert db.session.get(Tariff, 9001).name == "Стартовый"

    page.click("a[role=tab] >> nth=0")
    page.click("tr:has-text('tv_petrov') button.add")
    page.wait_for_selector("tr:has-text('tv_petrov') a[href^='/accounts/']")
    db.session.rollback()
    account = db.session.scalar(select(Account).filter_by(login="tv_petrov"))
    assert account.status == "active"
    wait_for(lambda: stalker.find(login="tv_petrov")["account_balance"] == "0.00", what="the sync")

    page.click("a[role=tab] >> nth=2")  # channels
    page.click("#import-channels")
    page.wait_for_selector("#stalker-progress .badge-finished")
    page.screenshot(path=str(shots / "stalker-channels.png"))
    db.session.rollback()
    assert len(db.session.scalars(select(StalkerChannel)).all()) == 12
