"""Browser tests: headless Chromium clicks through the admin and the cabinet of a live server.

Chromium comes from Debian (`apt-get install chromium`; .ci/run installs it). Without it these
tests are skipped with that reason, shown in the summary. The fixtures (``browser``, ``page``,
``live``) are in tests/browser_fixtures.py.
"""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from portal.extensions import db
from portal.models import Account, Contract
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_staff, gen_subscriber, gen_tariff


def test_a_manager_finds_a_subscriber_takes_a_payment_and_blocks_and_unblocks(app, live, page):
    """A manager types part of a name, opens the card, takes 700 ₽, blocks and unblocks the account."""
    with app.app_context():
        gen_staff("manager", role="manager")
        s = gen_subscriber(full_name="Кузнецова Мария Павловна")
        gen_subscriber(full_name="Петров Пётр")
        c = gen_contract(subscriber=s)
        a = gen_account(contract=c, login="kuznetsova", agent=gen_agent(name="RADIUS"),
                        tariff=gen_tariff([gen_service("300.00")], name="Домашний"))
        aid, cid = a.id, c.id

    page.goto(f"{live}/login")
    page.fill("input[name=login]", "manager")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.click("nav.sidebar a[href='/subscribers']")
    page.fill("#list-q", "кузне")
    # search as you type: only the rows change, and the URL keeps the search
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert "q=%D0%BA%D1%83%D0%B7%D0%BD%D0%B5" in page.url
    assert page.locator("#list thead").count() == 1 and page.locator("#rows th").count() == 0
    page.click("#rows >> text=Кузнецова Мария Павловна")

    if page.locator("text=Принять платёж").count():
        page.click("text=Принять платёж")
    else:
        page.click("details.action >> nth=1")
    form = page.locator(f"form[action='/contracts/{cid}/payments']")
    form.locator("input[name=amount]").fill("700")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-contract] >> text=700,00")
    with app.app_context():
        assert db.session.get(Contract, cid).balance == Decimal("700.00")

    page.click("text=kuznetsova")
    page.click(f"form[action='/accounts/{aid}/block'] button")
    page.wait_for_selector("#account-status .badge-blocked")
    page.click(f"form[action='/accounts/{aid}/unblock'] button")
    page.wait_for_selector("#account-status .badge-active")
    with app.app_context():
        acc = db.session.get(Account, aid)
        assert (acc.status, acc.reasons) == ("active", [])
    page.screenshot(path=str(Path(app.instance_path) / "account.png"))


def test_a_subscriber_sees_the_new_balance_and_not_another_contract(app, live, page):
    """After a payment the subscriber sees the balance in the cabinet; another's contract is 404."""
    with app.app_context():
        me = gen_subscriber(full_name="Абонент Один", cabinet_login="one", cabinet_password="one-pass-123")
        mine = gen_contract(subscriber=me)
        other = gen_contract(subscriber=gen_subscriber(full_name="Чужой Абонент"))
        from portal.billing import ledger
        ledger.payment(mine.id, "1250.50", actor="test", external_id="p-1")
        db.session.commit()
        mine_id, other_id = mine.id, other.id

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live}/cabinet/login")
    page.fill("input[name=login]", "one")
    page.fill("input[name=password]", "one-pass-123")
    page.click("button[type=submit]")
    balance = page.locator(f"[data-balance='{mine_id}']").inner_text()
    assert re.sub(r"\s", "", balance).startswith("1250,50")
    page.goto(f"{live}/cabinet/contracts/{mine_id}")
    assert page.locator("text=1 250,50").count() or page.locator("text=1250,50").count()
    r = page.goto(f"{live}/cabinet/contracts/{other_id}")
    assert r.status == 404 and "Чужой" not in page.content()
