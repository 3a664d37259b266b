"""Browser (Chromium): the operator's day — the top bar's search box, the ledger that says what
each entry is, an export download, the filter totals; in Russian and English, desktop and phone.
Screenshots go to OPERATOR_SHOTS (default /tmp/operator-shots) for a person to look at."""
from __future__ import annotations

import csv
import io
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import expect

from portal.billing import accounts as acc
from portal.billing import clock, ledger
from portal.extensions import db
from tests.builders import gen_account, gen_contract, gen_service, gen_staff, gen_subscriber, gen_tariff

SHOTS = Path(os.environ.get("OPERATOR_SHOTS", "/tmp/operator-shots"))
DAY = date(2026, 11, 17)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _log_in(page, live: str, lang: str = "ru") -> None:
    page.goto(f"{live}/login?lang={lang}")
    page.fill("input[name=login]", "desk")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    expect(page.locator("form.top-search input[name=q]")).to_be_visible()


def test_a_caller_is_found_from_the_top_bar_and_their_money_trail_reads_plainly(app, live, page):
    """Петров calls and says his number as "8 912 345 67 89": staff type it into the top bar,
    Enter opens his card; his contract's ledger says what each entry was; the payments he made
    export to a spreadsheet with the list's search."""
    with app.app_context():
        gen_staff("desk", role="manager")
        petrov = gen_subscriber(full_name="Петров Пётр Петрович", phones=["+7 912 345-67-89"])
        gen_subscriber(full_name="Петрова Анна", phones=["+7 495 111-22-33"])
        c = gen_contract(petrov)
        ledger.payment(c.id, Decimal("3000"), actor="t", external_id="bank-1")
        db.session.commit()
        with clock.as_of(DAY):
            kino = gen_service("300.00", name="Кино")
            a = gen_account(contract=c, login="petrov", tariff=gen_tariff([kino], monthly_fee="600.00",
                                                                          name="Домашний 100"),
                            services=[kino], house="ул. Московская, 1", flat="2")
            acc.block(a, "manager", actor="staff:desk")
            db.session.commit()
        sid, cid = petrov.id, c.id

    _log_in(page, live)
    page.fill("form.top-search input[name=q]", "8 912 345 67 89")
    page.press("form.top-search input[name=q]", "Enter")
    page.wait_for_url(f"**/subscribers/{sid}")
    _shot(page, "search-single-hit-ru")

    page.fill("form.top-search input[name=q]", "петров")
    page.press("form.top-search input[name=q]", "Enter")
    expect(page.locator("#found-subscribers tr")).to_have_count(2)
    _shot(page, "search-grouped-ru")

    page.goto(f"{live}/contracts/{cid}?lang=ru")
    titles = page.locator(".l-what .l-title").all_inner_texts()
    assert "Возврат за блокировку" in titles and "Списание за подключённую услугу" in titles
    _shot(page, "ledger-ru")
    page.goto(f"{live}/contracts/{cid}?lang=en")
    assert "Refund for a block" in page.locator(".l-what .l-title").all_inner_texts()
    _shot(page, "ledger-en")

    page.goto(f"{live}/payments?lang=en")
    page.fill("#list-q", "петров")
    expect(page.locator("#totals")).to_contain_text("3,000.00")
    with page.expect_download() as got:
        page.click("#export-csv")
    rows = list(csv.reader(io.StringIO(Path(got.value.path()).read_text(encoding="utf-8-sig"))))
    assert len(rows) == 2 and rows[1][3] == "Петров Пётр Петрович" and Decimal(rows[1][1]) == Decimal("3000.00")
    _shot(page, "payments-totals-en")


def test_the_top_bar_and_the_ledger_fit_a_phone(app, live, browser):
    """At 390 px the search box stays in the top bar and the ledger's titles are whole words."""
    with app.app_context():
        gen_staff("desk", role="manager")
        c = gen_contract(gen_subscriber(full_name="Сидорова Ольга"))
        ledger.payment(c.id, Decimal("500"), actor="t", external_id="cash-9")
        db.session.commit()
        cid = c.id
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True)
    phone = context.new_page()
    try:
        _log_in(phone, live)
        box = phone.locator("form.top-search input[name=q]").bounding_box()
        assert box and box["x"] + box["width"] <= 390
        phone.goto(f"{live}/contracts/{cid}")
        expect(phone.locator(".l-what .l-title").first).to_have_text("Платёж")
        _shot(phone, "ledger-phone-ru")
    finally:
        context.close()


def test_a_form_that_opens_another_page_puts_its_url_in_the_address_bar(app, live, page):
    """Creating an account on the subscriber's card opens the account's page: the address bar
    says so (it kept the card's URL, so a reload or a relative link went wrong)."""
    with app.app_context():
        gen_staff("desk", role="manager")
        s = gen_subscriber(full_name="Новиков Олег")
        gen_contract(s)
        gen_tariff(name="Домашний")
        from tests.builders import gen_agent
        gen_agent(name="RADIUS")
        sid = s.id
    _log_in(page, live)
    page.goto(f"{live}/subscribers/{sid}")
    page.locator("details:has(form[action$='/accounts']) > summary").click()
    form = page.locator("form[action$='/accounts']")
    form.locator("input[name=login]").fill("novikov")
    form.locator("select[name=agent_id]").select_option(label="RADIUS")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/accounts/*")
    expect(page.locator("h1")).to_contain_text("novikov")
    page.reload()
    expect(page.locator("h1")).to_contain_text("novikov")
