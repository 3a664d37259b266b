"""«Интерсвязь» in a real browser: the Intercom page and the account's access panel as staff
see them (screenshots at 1366×768 go to the test's tmp dir)."""
from __future__ import annotations

from portal.billing import accounts as acc
from portal.extensions import db
from portal.models import Account
from portal.platforms.reconcile import reconcile_account
from tests.builders import gen_staff
from tests.intercom_fixtures import emulator, intercom  # noqa: F401
from tests.test_browser import browser, live, page, pytestmark  # noqa: F401


def test_staff_see_one_profile_with_two_flats_one_limited(intercom, live, page, tmp_path):
    """Two flats of one client, one blocked: the Intercom page shows one profile with a full
    and a limited address; the account page's panel says the same."""
    contract = intercom.contract()
    one = intercom.flat(contract=contract, login="family", flat="1")
    two = intercom.flat(contract=contract, login="family", flat="2")
    acc.block(db.session.get(Account, two.id), "manager", actor="test")
    db.session.commit()
    for a in (one, two):
        reconcile_account("intercom", a.id)
    gen_staff("boss", role="admin")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live}/login?lang=en")
    page.fill("input[name=login]", "boss")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.goto(f"{live}/intercom")
    rows = page.locator('tr[data-profile="family"]')
    assert rows.count() == 2
    assert "limited access" in rows.nth(1).inner_text() and "full access" in rows.nth(0).inner_text()
    page.screenshot(path=str(tmp_path / "intercom.png"), full_page=True)
    page.goto(f"{live}/intercom/lookup")
    page.fill("input[name=login]", "family")
    page.screenshot(path=str(tmp_path / "lookup.png"))
    print("screenshots:", tmp_path)
