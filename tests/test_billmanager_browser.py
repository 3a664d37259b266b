"""Browser: an admin creates a service handler against the selling BILLmanager emulator,
sees the selling balance, imports a tariff through the wizard and enables it."""
from __future__ import annotations

import os
import time
from pathlib import Path

from babel.numbers import format_currency
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import BmHandler, BmTariff, DataCenter, Department
from tests.billmanager_fixtures import SELLER_LOGIN, SELLER_PASSWORD, WORKER_ENV, make_handler
from tests.builders import gen_staff

SHOTS = Path(os.environ.get("BM_SCREENSHOTS", "/tmp/billmanager-shots"))


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_an_admin_creates_a_handler_and_imports_a_tariff(app, live, page, seller, processes):
    """The admin fills the handler form, presses Next and sees the balance; reads the price
    list, imports VDS-2, reprices it and enables it."""
    with app.app_context():
        gen_staff("boss")
        db.session.add_all([Department(name="Отдел хостинга"), DataCenter(name="Москва")])
        db.session.commit()
    processes.start("jobs.worker", **WORKER_ENV)

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "boss")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.click("nav.sidebar a[href='/billmanager/handlers']")
    _shot(page, "handlers-empty")
    page.click(".page-head a[href='/billmanager/handlers/new']")
    # is_visible() does not wait: the click may return before the new page is in.
    expect(page.locator(".bm-warning")).to_be_visible()
    page.fill("input[name=itemtype]", "vds")
    page.fill("input[name=url]", seller.url)
    page.fill("input[name=username]", SELLER_LOGIN)
    page.fill("input[name=password]", SELLER_PASSWORD)
    page.select_option("select[name=datacenter_id]", label="Москва")
    page.fill("input[name=name]", "VDS Москва")
    page.select_option("select[name=department_id]", label="Отдел хостинга")
    page.fill("input[name=min_balance]", "100")
    _shot(page, "handler-form")
    page.click("section.panel form button[type=submit]")
    page.wait_for_selector(".progress[data-state=finished]", timeout=20_000)
    shown = page.locator(".progress").inner_text().replace("\xa0", " ")
    assert format_currency(1000, "RUB", locale="ru").replace("\xa0", " ") in shown  # "1 000,00 ₽"
    _shot(page, "handler-checked")
    assert SELLER_PASSWORD not in page.content()

    page.click(".bm-tabs a[href='/billmanager/import']")
    page.select_option("select[name=handler]", label="VDS Москва (vds)")
    page.wait_for_selector(".toolbar button.btn-primary")
    # the button is shown while the page is still loading; htmx (deferred) gives it its request
    # by the time the page has loaded: a click before that would do nothing
    page.wait_for_load_state("domcontentloaded")
    page.locator("#fetch").scroll_into_view_if_needed()
    page.click(".toolbar button.btn-primary")
    page.wait_for_selector("#fetch .progress[data-state=finished]", timeout=20_000)
    page.click("#continue")
    row = page.locator("tr[data-tariff='102']")
    assert format_currency(6480, "RUB", locale="ru").replace("\xa0", " ") in row.inner_text().replace("\xa0", " ")
    _shot(page, "import-wizard")
    row.locator("button[type=submit]").click()
    page.wait_for_selector("input[name=price]")
    _shot(page, "tariff-imported")
    page.fill("input[name=price]", "890")
    page.check("input[name=enabled]")
    page.click("form button[type=submit].btn-primary")
    page.wait_for_selector(".badge-active")
    with app.app_context():
        t = db.session.scalar(select(BmTariff))
        assert (t.remote_id, str(t.price), t.enabled) == ("102", "890.00", True)
        assert db.session.scalar(select(BmHandler)).last_balance is not None
    page.click(".bm-tabs a[href='/billmanager/tariffs']")
    _shot(page, "tariffs")


class _SlowScripts:
    """WSGI middleware: the portal's own scripts answer ``seconds`` late while ``on``, as on a
    slow line or a loaded server (the page's HTML is already in and shown meanwhile)."""

    def __init__(self, wsgi_app, seconds: float):
        self.wsgi_app, self.seconds, self.on = wsgi_app, seconds, False

    def __call__(self, environ, start_response):
        if self.on and environ.get("PATH_INFO", "").endswith(".js"):
            time.sleep(self.seconds)
        return self.wsgi_app(environ, start_response)


def test_a_handler_chosen_while_the_page_is_still_loading_opens_its_import_step(app, live, page, seller,
                                                                                 monkeypatch):
    """The admin picks the handler before the page's scripts have arrived (a slow line): does
    the wizard still go on to that handler's step, instead of the choice being lost?"""
    with app.app_context():
        gen_staff("boss")
        make_handler(seller)
        db.session.commit()
    slow = _SlowScripts(app.wsgi_app, 3)
    monkeypatch.setattr(app, "wsgi_app", slow)
    page.goto(f"{live}/login")
    page.fill("input[name=login]", "boss")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.wait_for_load_state("domcontentloaded")
    slow.on = True
    page.goto(f"{live}/billmanager/import", wait_until="commit")
    page.select_option("select[name=handler]", label="VDS Москва (vds)")  # as soon as the select is there
    expect(page.locator(".toolbar button.btn-primary")).to_be_visible()
    assert "handler=" in page.url


def test_staff_see_the_service_on_both_sides_and_the_subscriber_sees_it_active(app, live, page, seller, processes):
    """After an order the services page shows it ordered and active on the seller with its IP;
    a short balance task is listed; the subscriber's cabinet shows the hosting as active."""
    from portal.platforms.billmanager import orders
    from tests.billmanager_fixtures import imported_tariff, make_handler
    from tests.builders import subscriber_with_account
    from tests.helpers import CABINET_PASSWORD as PASSWORD
    from tests.platform_fixtures import wait_for

    processes.start("jobs.worker", **WORKER_ENV)
    with app.app_context():
        gen_staff("boss")
        t = imported_tariff(make_handler(seller), price="450.00")
        _s, _c, a = subscriber_with_account("anna", paid="2000.00")
        svc = orders.place_order(a, t, domain="anna-shop.ru", actor="test")
        db.session.commit()
        svc_id = svc.id
        orders.enqueue_order(svc_id)
        from portal.models import BmService
        wait_for(lambda: db.session.get(BmService, svc_id).state == "ordered", what="the order")
        wait_for(lambda: seller.status(db.session.get(BmService, svc_id).remote_id) == 2, what="activation")
        orders.poll()
    page.goto(f"{live}/login")
    page.fill("input[name=login]", "boss")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.goto(f"{live}/billmanager/services")
    assert "anna-shop.ru" in page.locator(f"#svc-{svc_id}").inner_text()
    assert page.locator(f"#svc-{svc_id} .badge-active").count() == 3  # the account, here, on the seller
    _shot(page, "services")
    page.goto(f"{live}/billmanager/lists")
    _shot(page, "lists")
    page.goto(f"{live}/billmanager/handlers")
    _shot(page, "handlers")

    page.goto(f"{live}/cabinet/login")
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    # count() does not wait: the click returns once the cabinet's URL is in, maybe before its body
    expect(page.locator(f"#hosting-{svc_id} .badge-active")).to_have_count(1)
    _shot(page, "cabinet-home")
    page.goto(f"{live}/cabinet/hosting")
    _shot(page, "cabinet-hosting")
