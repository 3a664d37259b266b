"""«Смотрёшка» in a real browser: the staff page, the account page's TV panel, and the cabinet's
TV page on a phone (390×844). Screenshots go to $SMOTRESHKA_SHOTS or the test's tmp dir."""
from __future__ import annotations

import os

from sqlalchemy import select

from portal.extensions import db
from portal.models import SmotreshkaDrift
from portal.platforms.reconcile import reconcile_account
from portal.platforms.smotreshka import console
from tests.builders import gen_staff
from tests.platform_fixtures import wait_for
from tests.smotreshka_fixtures import CALLBACK_LOGIN, CALLBACK_PASSWORD, tv_account


def shots(tmp_path) -> str:
    return os.environ.get("SMOTRESHKA_SHOTS") or str(tmp_path)


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_staff_see_the_platform_page_and_the_account_tv_panel(smotreshka, tv_catalog, live, page, tmp_path,
                                                              processes):
    """An admin opens «Смотрёшка»: the listen URLs, the catalog with kinds and prices, the drift
    report with its fixes; on the account page the TV panel compares the account with the
    platform and lists its differences, nothing wider than the window."""
    a = tv_account(tv_catalog, ["101", "201"], money="3000.00", login="ivanov")
    assert reconcile_account("smotreshka", a.id) == "ok"
    pid = smotreshka.by_username("t_ivanov")["id"]
    smotreshka.accounts[pid]["subscriptions"] = {"101", "202"}
    smotreshka._create({"username": "stranger", "email": "x@example.ru"})
    console.drift_report("test")
    smotreshka.app.configure(live, CALLBACK_LOGIN, CALLBACK_PASSWORD)
    smotreshka.app.buy(pid, "102", old_offer_id="101")  # an upsale call in the log
    gen_staff("boss", role="admin")
    processes.start("jobs.worker")
    page.goto(f"{live}/login?lang=en")
    page.fill("input[name=login]", "boss")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.goto(f"{live}/smotreshka")
    assert "/upsale/v3/add-subscription/ensure" in page.inner_text("main")
    assert page.locator("#smotreshka-drift tr[data-kind]").count() == \
        db.session.scalar(select(db.func.count()).select_from(SmotreshkaDrift))
    assert fits(page, 1366)
    page.screenshot(path=f"{shots(tmp_path)}/smotreshka-admin.png", full_page=True)

    # the worker pushes the purchase (a billing change: what was switched by hand stays, listed)
    wait_for(lambda: "102" in (subs := smotreshka.accounts[pid]["subscriptions"]) and "101" not in subs,
             what="the worker's push")
    smotreshka.accounts[pid]["subscriptions"] = {"102", "202"}  # changed by hand again
    page.goto(f"{live}/accounts/{a.id}")
    panel = page.locator("#account-tv")
    panel.locator("button", has_text="Compare").click()
    page.wait_for_selector('#account-tv .progress[data-state="finished"]', timeout=30_000)
    assert page.locator('#account-tv tr[data-kind]').count() == 2
    assert fits(page, 1366)
    page.screenshot(path=f"{shots(tmp_path)}/smotreshka-account-panel.png", full_page=True)


def test_a_subscriber_sees_and_changes_tv_on_a_phone(smotreshka, tv_catalog, live, page, tmp_path):
    """The cabinet on a phone: the TV page lists the basic and additional subscriptions with
    prices, "Add" shows the price and the balance after before confirming, nothing overflows."""
    a = tv_account(tv_catalog, ["101"], money="1000.00", cabinet_login="maria", login="maria_tv")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live}/cabinet/login?lang=en")
    page.fill("input[name=login]", "maria")
    page.fill("input[name=password]", "cabinet-pass-1")
    page.click("button[type=submit]")
    page.goto(f"{live}/cabinet/")
    assert page.locator("text=Лайт").count() >= 1
    assert fits(page, 390)
    page.screenshot(path=f"{shots(tmp_path)}/smotreshka-cabinet-home-390.png", full_page=True)
    page.goto(f"{live}/cabinet/tv/{a.id}")
    assert page.locator('#tv-basic li[data-service="101"] .badge').count() == 1
    assert fits(page, 390)
    page.screenshot(path=f"{shots(tmp_path)}/smotreshka-cabinet-tv-390.png", full_page=True)
    page.locator('#tv-additional li[data-service="201"] button').click()
    page.wait_for_selector("#tv-confirm *")
    assert "150" in page.inner_text("#tv-confirm") and page.locator("#tv-confirm a.tv-cancel").count() == 1
    assert fits(page, 390)
    page.screenshot(path=f"{shots(tmp_path)}/smotreshka-cabinet-tv-confirm-390.png", full_page=True)
