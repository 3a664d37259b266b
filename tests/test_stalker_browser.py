"""Browser: a manager clicks through the Stalker console (Chromium, live server, real worker,
emulator over HTTP): import tariffs, "+" an account, import channels."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, StalkerChannel, StalkerSnapshotRow, StalkerStb, Tariff
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


def test_a_manager_adds_a_loginless_account_and_removes_an_stb(app, live, page, stalker, tv_agent, processes):
    """A Stalker user without a login shows "as tv601" and becomes tv601 on "+"; on the STB tab
    the manager removes that STB from billing after the confirmation."""
    gen_staff("manager", role="manager")
    stalker.add_user("", "601", "9001", 1, "00:1A:79:00:00:61", full_name="Кухня")
    console.refresh(actor="test")
    console.import_tariff(db.session.scalar(select(StalkerSnapshotRow.id).filter_by(kind="tariffs", key="9001")),
                          actor="test")
    db.session.commit()
    shots = Path(app.instance_path)
    dialogs = []
    page.on("dialog", lambda d: dialogs.append(d.message))

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "manager")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.goto(f"{live}/stalker/accounts?q=601")
    page.click("summary:has-text('+')")
    page.wait_for_selector("tr:has-text('Кухня') .new-login")
    page.screenshot(path=str(shots / "stalker-loginless.png"))
    page.click("tr:has-text('Кухня') button.add")
    page.wait_for_selector("tr:has-text('Кухня') a[href^='/accounts/']")
    db.session.rollback()
    assert db.session.scalar(select(Account).filter_by(login="tv601")).status == "active"

    page.click("a[role=tab] >> nth=1")  # STB
    page.wait_for_selector("#billing-stbs >> text=00:1A:79:00:00:61")
    page.screenshot(path=str(shots / "stalker-stb.png"))
    page.click("#billing-stbs tr:has-text('00:1A:79:00:00:61') button.remove-stb")
    page.wait_for_selector("#billing-stbs tr:has-text('00:1A:79:00:00:61')", state="detached")
    assert dialogs and "00:1A:79:00:00:61" in dialogs[-1] and "tv601" in dialogs[-1]
    db.session.rollback()
    assert db.session.scalar(select(StalkerStb).filter_by(mac="00:1A:79:00:00:61")) is None
