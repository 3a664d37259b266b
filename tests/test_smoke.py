from decimal import Decimal

from portal.billing import ledger
from portal.extensions import db
from tests.builders import gen_account, gen_contract, gen_service


def test_login_page(client):
    r = client.get("/login")
    assert r.status_code == 200
    assert "Вход" in r.get_data(as_text=True) or "login" in r.get_data(as_text=True)


def test_charge_and_pay(ctx):
    svc = gen_service("300.00")
    contract = gen_contract()
    ledger.payment(contract.id, Decimal("1000"), actor="t", external_id="p1")
    db.session.commit()
    acc = gen_account(contract=contract, services=[svc])
    db.session.refresh(contract)
    print(contract.balance, acc.status)
    assert contract.balance < Decimal("1000")
