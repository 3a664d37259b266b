"""Browser: a manager clicks through the Stalker console (Chromium, live server, real worker,
emulator over HTTP): import tariffs, "+" an account (the dialog that asks how billing starts),
import channels, the tables' headers and dates. Screenshots go to $STALKER_SCREENSHOTS."""
from __future__ import annotations

import calendar
import os
import tempfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from babel.numbers import format_currency
from playwright.sync_api import expect
from sqlalchemy import select

from portal.billing import clock, directory
from portal.extensions import db
from portal.models import Account, StalkerChannel, StalkerSnapshotRow, StalkerStb, Tariff
from portal.platforms.stalker import console
from tests.builders import gen_staff
from tests.platform_fixtures import wait_for

SHOTS = Path(os.environ.get("STALKER_SCREENSHOTS", Path(tempfile.gettempdir()) / "stalker-shots"))


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def ru_money(amount: Decimal) -> str:
    """An amount as the Russian page writes it (Babel, the operator's currency)."""
    return format_currency(amount, "RUB", locale="ru")


def test_a_manager_imports_plans_adds_an_account_and_imports_channels(app, live, page, stalker, tv_agent,
                                                                      processes):
    """Import the plan, "+" tv_petrov (the dialog shows what each way of starting billing moves
    and preselects the credit: a new contract has no money), import channels: as a manager
    sees it, in Russian."""
    gen_staff("manager", role="manager")
    console.refresh(actor="test")
    processes.start("jobs.worker")

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "manager")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.click("nav.sidebar >> text=Stalker")
    page.wait_for_selector("#rows >> text=tv_petrov")
    expect(page.locator("th[data-field=full_name]")).to_have_text("ФИО / название")
    expect(page.locator("th[data-field=stb_mac]")).to_have_text("MAC приставки")
    shot(page, "stalker-accounts")

    page.click("a[role=tab] >> nth=4")  # tariff plans
    page.wait_for_selector("#rows >> text=Стартовый")
    page.click("tr:has-text('Стартовый') button.import-tariff")
    page.wait_for_selector("tr:has-text('Стартовый') >> text=#9001")
    shot(page, "stalker-tariffs")
    db.session.rollback()
    assert db.session.get(Tariff, 9001).name == "Стартовый"
    directory.save_tariff({"monthly_fee": "300"}, actor="test", tariff=db.session.get(Tariff, 9001))
    db.session.commit()
    today = clock.today()
    dim = calendar.monthrange(today.year, today.month)[1]
    due = (Decimal(300) * (dim - today.day + 1) / dim).quantize(Decimal("0.01"), ROUND_HALF_UP)

    page.click("a[role=tab] >> nth=0")
    page.click("tr:has-text('tv_petrov') button.add")
    dialog = page.locator("#stalker-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-option=credit] input")).to_be_checked()
    expect(dialog.locator("[data-option=charge] .charge")).to_have_text(ru_money(due))
    expect(dialog.locator("[data-option=charge] .blocks")).to_be_visible()
    expect(dialog.locator("[data-option=credit] .balance-after")).to_have_text(ru_money(Decimal(0)))
    expect(dialog.locator("[data-option=next_month]")).to_contain_text("сейчас ничего")
    shot(page, "stalker-add-dialog")
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator(".stalker-add-done")).to_contain_text("tv_petrov")
    expect(page.locator("tr:has-text('tv_petrov') td.stalker-billing a[href^='/accounts/']")).to_be_visible()
    shot(page, "stalker-add-done")
    dialog.locator(".stalker-add-done [data-close-dialog]").click()
    expect(dialog).to_be_hidden()
    db.session.rollback()
    account = db.session.scalar(select(Account).filter_by(login="tv_petrov"))
    assert account.status == "active" and account.contract.balance == 0
    wait_for(lambda: stalker.find(login="tv_petrov")["account_balance"] == "0.00", what="the sync")
    assert stalker.find(login="tv_petrov")["status"] == 1  # still watching

    page.click("a[role=tab] >> nth=1")  # STB: end_date, empty when Stalker has none
    expect(page.locator("th[data-field=end_date]")).to_have_text("Дата окончания")
    expect(page.locator("#rows tr:has-text('00:1A:79:00:00:01') td.stalker-end_date")).to_have_text("—")
    shot(page, "stalker-stb-end-date")

    page.click("a[role=tab] >> nth=2")  # channels
    page.click("#import-channels")
    page.wait_for_selector("#stalker-progress .badge-finished")
    shot(page, "stalker-channels")
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
    dialogs = []
    page.on("dialog", lambda d: dialogs.append(d.message))

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "manager")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.goto(f"{live}/stalker/accounts?q=601")
    page.click("summary:has-text('+')")
    page.wait_for_selector("tr:has-text('Кухня') .new-login")
    shot(page, "stalker-loginless")
    page.click("tr:has-text('Кухня') button.add")
    expect(page.locator("#stalker-dialog")).to_contain_text("tv601")
    page.click("#stalker-dialog button[type=submit]")
    expect(page.locator("tr:has-text('Кухня') td.stalker-billing a[href^='/accounts/']")).to_be_visible()
    page.click("#stalker-dialog .stalker-add-done [data-close-dialog]")
    expect(page.locator("#stalker-dialog")).to_be_hidden()
    db.session.rollback()
    assert db.session.scalar(select(Account).filter_by(login="tv601")).status == "active"

    page.click("a[role=tab] >> nth=1")  # STB
    page.wait_for_selector("#billing-stbs >> text=00:1A:79:00:00:61")
    shot(page, "stalker-stb")
    page.click("#billing-stbs tr:has-text('00:1A:79:00:00:61') button.remove-stb")
    page.wait_for_selector("#billing-stbs tr:has-text('00:1A:79:00:00:61')", state="detached")
    assert dialogs and "00:1A:79:00:00:61" in dialogs[-1] and "tv601" in dialogs[-1]
    db.session.rollback()
    assert db.session.scalar(select(StalkerStb).filter_by(mac="00:1A:79:00:00:61")) is None
