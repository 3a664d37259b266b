"""The Content-Security-Policy in a real browser: every page works with only our own files
(no inline script or style), HTMX included."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import CHROMIUM
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_staff, gen_subscriber, gen_tariff

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed: apt-get install chromium")

# every CSP violation the page reports, kept where the test can read it
WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " +
                         e.sourceFile + ":" + e.lineNumber));"""


def violations(pg) -> list[str]:
    return pg.evaluate("window.__csp || []")


def test_every_page_works_under_the_csp(app, live, page):  # noqa: F811
    """Do the admin's and the cabinet's pages, the dashboard chart and HTMX search, and the
    "End sessions" button all work with the CSP, without a single violation?"""
    with app.app_context():
        gen_staff("chief")
        clerk = gen_staff("clerk", role="manager")
        s = gen_subscriber(full_name="Смирнов Олег", cabinet_login="oleg", cabinet_password="oleg-pass-12")
        gen_subscriber(full_name="Другой Абонент")
        c = gen_contract(subscriber=s)
        service = gen_service("300.00")
        a = gen_account(contract=c, services=[service], agent=gen_agent(), tariff=gen_tariff([service]))
        ids = {"s": s.id, "c": c.id, "a": a.id, "clerk": clerk.id}
    page.add_init_script(WATCH)
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "chief")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    expect(page.locator("#money-chart")).to_be_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('money-chart'))")
    for path in ("/subscribers", f"/subscribers/{ids['s']}", f"/contracts/{ids['c']}", f"/accounts/{ids['a']}",
                 "/contracts", "/accounts", "/payments", "/tariffs", "/services", "/agents", "/staff",
                 "/api-tokens", "/extra-fields", "/jobs", "/tasks", "/connections"):
        r = page.goto(f"{live}{path}")
        assert r.status < 400, path
        assert violations(page) == [], path

    page.goto(f"{live}/subscribers")
    page.fill("#list-q", "смирн")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")  # HTMX swapped the rows
    page.goto(f"{live}/staff/{ids['clerk']}")
    page.click(f"form[action='/staff/{ids['clerk']}/sessions'] button")
    expect(page.locator(".flash-ok")).to_contain_text("clerk")
    assert violations(page) == []

    page.goto(f"{live}/cabinet/login")
    page.fill("input[name=login]", "oleg")
    page.fill("input[name=password]", "oleg-pass-12")
    page.click("button[type=submit]")
    expect(page.locator("body")).to_contain_text("Смирнов")
    for path in ("/cabinet/", f"/cabinet/contracts/{ids['c']}", f"/cabinet/accounts/{ids['a']}", "/cabinet/password"):
        assert page.goto(f"{live}{path}").status == 200, path
        assert violations(page) == [], path
    assert console == []
