"""Smoke: the login page is a working login form, and a service charges the rest of the month."""
import calendar
import re
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from portal.billing import clock, ledger
from portal.extensions import db
from portal.models import LedgerEntry
from tests.builders import gen_account, gen_contract, gen_service, gen_staff


def test_the_login_page_is_a_form_that_logs_staff_in(client, ctx):
    """Does /login show a form (login, password, CSRF token) that lets the right password in
    and keeps a wrong one out?"""
    gen_staff("smoke", password="smoke-pass-1")
    page = client.get("/login").get_data(as_text=True)
    assert re.search(r'<form[^>]*method="post"', page, re.I)
    for field in ("login", "password", "csrf_token"):
        assert re.search(rf'name="{field}"', page), field
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    wrong = client.post("/login", data={"login": "smoke", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 200 and client.get("/").status_code == 302  # still logged out
    right = client.post("/login", data={"login": "smoke", "password": "smoke-pass-1", "csrf_token": token})
    assert right.status_code == 302 and client.get("/").status_code == 200


def test_a_service_charges_the_rest_of_the_month_from_the_payment(ctx):
    """1000 paid, then a 300 a month service assigned today: is the balance 1000 minus the
    rest of this month (price x days left / days in the month, half up), as the ledger sums?"""
    svc = gen_service("300.00")
    contract = gen_contract()
    ledger.payment(contract.id, Decimal("1000"), actor="t", external_id="p1")
    db.session.commit()
    gen_account(contract=contract, services=[svc])
    today = clock.today()
    days = calendar.monthrange(today.year, today.month)[1]
    due = (Decimal("300.00") * (days - today.day + 1) / days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    db.session.refresh(contract)
    assert contract.balance == Decimal("1000") - due
    posted = db.session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.contract_id == contract.id))
    assert posted == contract.balance
