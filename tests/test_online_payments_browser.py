"""Paying from the cabinet in Chromium through the ЮKassa emulator's own page."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.billing import blocking
from portal.extensions import db
from portal.models import Account, LedgerEntry
from tests.builders import gen_staff
from tests.yookassa_fixtures import PASSWORD, debtor, set_shop

SHOTS = Path("/tmp/online-payment-shots")


@pytest.mark.browser
def test_a_blocked_subscriber_pays_online_and_is_unblocked(app, server, emu, page):  # noqa: F811
    """In Russian: the blocked subscriber sees «Оплатить онлайн» with the amount that lifts the
    block, pays on the service's page («Оплатить»), comes back to «Оплачено» and an active account."""
    emu.notify = True
    with app.app_context():
        set_shop(emu)
        c, a = debtor()
        cid, aid, due = c.id, a.id, blocking.top_up_to_unblock(c)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server}/cabinet/login?lang=ru")
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    form = page.locator(f"#pay-{cid}")
    assert Decimal(form.locator("input[name=amount]").input_value()) == due
    assert "Оплатить онлайн" in form.inner_text()
    page.screenshot(path=str(SHOTS / "1-cabinet.png"), full_page=True)
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#pay")
    assert "ЮKassa" in page.content()
    page.screenshot(path=str(SHOTS / "2-service-page.png"), full_page=True)
    page.click("#pay")
    page.wait_for_selector('#online-payment[data-state="succeeded"]')
    assert "зачислен" in page.locator("#online-payment").inner_text()
    page.screenshot(path=str(SHOTS / "3-return.png"), full_page=True)
    page.goto(f"{server}/cabinet/")
    page.screenshot(path=str(SHOTS / "4-home-after.png"), full_page=True)
    # staff see it paid in the online payments list, in Russian
    with app.app_context():
        gen_staff("kassir", role="manager")
    staff = page.context.browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    sp = staff.new_page()
    try:
        sp.goto(f"{server}/login?lang=ru")
        sp.fill("input[name=login]", "kassir")
        sp.fill("input[name=password]", "password123")
        sp.click("button[type=submit]")
        sp.goto(f"{server}/online-payments")
        row = sp.locator('#online-payments tr[data-state="succeeded"]')
        assert row.count() == 1 and "оплачен" in row.inner_text()
        sp.screenshot(path=str(SHOTS / "5-staff-list.png"), full_page=True)
    finally:
        staff.close()
    with app.app_context():
        amounts = list(db.session.scalars(select(LedgerEntry.amount).where(
            LedgerEntry.contract_id == cid, LedgerEntry.idempotency_key.like("yookassa:%"))))
        assert amounts == [due]
        assert db.session.get(Account, aid).status == "active"
