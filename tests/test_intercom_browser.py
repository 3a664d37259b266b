"""«Интерсвязь» in a real browser: the Intercom page and the account's access panel as staff
see them (screenshots at 1366×768 go to the test's tmp dir)."""
from __future__ import annotations

from portal.billing import accounts as acc
from portal.extensions import db
from portal.models import Account
from portal.platforms.reconcile import reconcile_account
from tests.builders import gen_staff


def sign_in(page, url: str, login: str, password: str, size: tuple[int, int]) -> None:
    """Open the login form at this screen size and sign in."""
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(url)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


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
    sign_in(page, f"{live}/login?lang=en", "boss", "password123", (1366, 768))
    page.goto(f"{live}/intercom")
    rows = page.locator('tr[data-profile="family"]')
    assert rows.count() == 2
    assert "limited access" in rows.nth(1).inner_text() and "full access" in rows.nth(0).inner_text()
    page.screenshot(path=str(tmp_path / "intercom.png"), full_page=True)
    page.goto(f"{live}/intercom/lookup")
    page.fill("input[name=login]", "family")
    page.screenshot(path=str(tmp_path / "lookup.png"))
    print("screenshots:", tmp_path)


def test_a_subscriber_with_two_flats_sees_which_one_is_limited_and_why(intercom, live, page, tmp_path):
    """The cabinet on a phone (390×844): two flats on one intercom profile, one blocked by
    the operator: the section names both flats, full access for one, limited access for the
    other with the reason in words, and nothing overflows the screen."""
    import os
    from decimal import Decimal

    from portal.billing import ledger
    from tests.builders import gen_contract, gen_subscriber

    me = gen_subscriber(full_name="Иванова Мария Петровна", phones=["+7 900 111-22-33"], cabinet_login="maria",
                        cabinet_password="maria-pass-123")
    contract = gen_contract(subscriber=me)
    ledger.payment(contract.id, Decimal("1000.00"), actor="test", external_id="pay-maria")
    db.session.commit()
    one = intercom.flat(contract=contract, login="ivanova.m", house="ул. Ленина, 5", flat="12")
    two = intercom.flat(contract=contract, login="ivanova.m", house="пр. Космонавтов, 118, корп. 2", flat="241")
    acc.block(db.session.get(Account, two.id), "manager", actor="test")
    db.session.commit()
    for a in (one, two):
        reconcile_account("intercom", a.id)
    sign_in(page, f"{live}/cabinet/login", "maria", "maria-pass-123", (390, 844))
    page.goto(f"{live}/cabinet/")
    section = page.locator("#section-intercom")
    section.scroll_into_view_if_needed()
    full, limited = page.locator(f"#intercom-{one.id}"), page.locator(f"#intercom-{two.id}")
    assert full.get_attribute("data-level") == "full" and limited.get_attribute("data-level") == "limited"
    assert "12" in full.inner_text() and "241" in limited.inner_text()
    assert "operator" in limited.inner_text() or "оператор" in limited.inner_text()
    # nothing wider than the phone's screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots = os.environ.get("INTERCOM_SHOTS") or str(tmp_path)
    page.screenshot(path=f"{shots}/cabinet-390.png", full_page=True)
    section.screenshot(path=f"{shots}/cabinet-390-intercom.png")
