"""The staff dashboard: what a manager sees first after logging in."""
from __future__ import annotations

import re
from decimal import Decimal

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.extensions import db
from tests.builders import gen_account, gen_contract, gen_service, gen_staff
from tests.helpers import login


def figure(html: str, fig: str) -> str:
    return re.search(rf'id="fig-{fig}">([^<]*)<', html).group(1).strip()


def test_dashboard_needs_a_login(client):
    """Without logging in, the dashboard sends me to the login page."""
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_wrong_password_says_so_in_russian(client, ctx):
    """A wrong password is refused with a clear message in Russian."""
    gen_staff("olga")
    r = login(client, "olga", "not-it")
    assert "Неверный логин или пароль." in r.get_data(as_text=True)


def test_dashboard_shows_the_days_figures(client, ctx):
    """After a payment, a charge and a block, do the dashboard figures add up?"""
    gen_staff("viewer1", role="viewer")
    rich = gen_contract()
    ledger.payment(rich.id, Decimal("1000.00"), actor="t", external_id="p1")
    db.session.commit()
    gen_account(contract=rich, services=[gen_service("300.00")])
    poor = gen_account(services=[gen_service("100.00")])  # no money: blocked by balance
    blocked = gen_account(contract=rich)
    acc.block(blocked, "manager", actor="t")
    db.session.commit()

    login(client, "viewer1")
    html = client.get("/").get_data(as_text=True).replace("\xa0", " ")
    assert figure(html, "subscribers") == "2"
    assert figure(html, "active") == "1"
    assert figure(html, "blocked") == "2"
    assert figure(html, "payments") == "1 000,00 ₽"  # Russian number format
    assert Decimal(figure(html, "charges")[:-2].replace(" ", "").replace(",", ".")) > 0
    assert figure(html, "negative").startswith("-")
    assert "money-chart" in html and "Панель" in html
    assert poor.contract.balance < 0


def test_dashboard_in_english(app, client):
    """Switching to English shows the same page in English."""
    with app.app_context():  # (each request below gets its own context, and so its language)
        gen_staff("ann")
    login(client, "ann")
    html = client.get("/?lang=en").get_data(as_text=True)
    assert "Dashboard" in html and "Sum of negative balances" in html


def test_unknown_page_is_a_friendly_404(client):
    """A mistyped address shows a page, not a stack trace."""
    r = client.get("/no-such-page")
    assert r.status_code == 404 and "404" in r.get_data(as_text=True) and "<html" in r.get_data(as_text=True)


def test_login_is_rate_limited_with_a_clear_message(app, client):
    """After five wrong passwords, even the right one waits, and the page says for how long."""
    with app.app_context():
        gen_staff("guess", password="right-password")
    for _ in range(5):
        assert "Неверный логин или пароль." in login(client, "guess", "wrong").get_data(as_text=True)
    r = login(client, "guess", "right-password")
    assert r.status_code == 429 and "Слишком много неудачных попыток" in r.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still not logged in
