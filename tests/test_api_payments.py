"""API v1 payments: money in, exactly once per external id."""
import threading
from decimal import Decimal

from portal.extensions import db
from portal.models import Contract, LedgerEntry
from tests.builders import gen_account, gen_contract, gen_service, gen_tariff, gen_token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def ledger_rows(contract_id):
    return db.session.scalar(db.select(db.func.count()).select_from(LedgerEntry).filter_by(contract_id=contract_id))


def test_payment_is_idempotent(client, ctx):
    """If my system sends the same payment twice, is the money counted once?"""
    h = bearer(gen_token("manager", name="bank"))
    contract = gen_contract()
    body = {"contract_id": contract.id, "amount": "300.00", "external_id": "sber-0001", "comment": "Сбербанк"}
    first = client.post("/api/v1/payments", headers=h, json=body)
    assert first.status_code == 201, first.json
    assert first.json["amount"] == "300.00" and first.json["balance"] == "300.00"
    assert first.json["kind"] == "payment" and first.json["external_id"] == "sber-0001"
    assert first.json["author"] == "api:bank"
    again = client.post("/api/v1/payments", headers=h, json=body)
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["balance"] == "300.00"
    assert ledger_rows(contract.id) == 1
    db.session.expire_all()
    assert db.session.get(Contract, contract.id).balance == Decimal("300.00")


def test_reused_external_id_for_another_payment(client, ctx):
    """If my system reuses a payment id for a different payment, am I told so, with no money moved?"""
    h = bearer(gen_token("manager"))
    c1, c2 = gen_contract(), gen_contract()
    client.post("/api/v1/payments", headers=h, json={"contract_id": c1.id, "amount": "100.00", "external_id": "p-1"})
    for body in ({"contract_id": c1.id, "amount": "150.00", "external_id": "p-1"},
                 {"contract_id": c2.id, "amount": "100.00", "external_id": "p-1"}):
        r = client.post("/api/v1/payments", headers=h, json=body)
        assert r.status_code == 409 and set(r.json["errors"]) == {"external_id"}
    assert ledger_rows(c1.id) == 1 and ledger_rows(c2.id) == 0


def test_bad_payment(client, ctx):
    """Does a bad payment name every bad field, and does a payment to no contract answer 404?"""
    h = bearer(gen_token("manager"))
    r = client.post("/api/v1/payments", headers=h, json={"contract_id": "7", "amount": "-5", "comment": 1})
    assert r.status_code == 422
    assert set(r.json["errors"]) == {"contract_id", "amount", "external_id", "comment"}
    r = client.post("/api/v1/payments", headers=h, json={"contract_id": 1, "amount": "-5.00", "external_id": "x"})
    assert r.status_code == 422 and r.json["errors"] == {"amount": "must be positive"}
    r = client.post("/api/v1/payments", headers=h, json={"contract_id": 999999, "amount": "5.00", "external_id": "y"})
    assert r.status_code == 404 and set(r.json["errors"]) == {"contract_id"}
    assert db.session.scalar(db.select(db.func.count()).select_from(LedgerEntry)) == 0


def test_payment_lifts_a_balance_block(client, ctx):
    """Does a payment that covers the debt unblock the accounts blocked by balance?"""
    h = bearer(gen_token("manager"))
    svc = gen_service("300.00")
    account = gen_account(tariff=gen_tariff([svc]), services=[svc])  # no money: blocked by balance
    assert client.get(f"/api/v1/accounts/{account.id}", headers=h).json["block_reasons"] == ["balance"]
    r = client.post("/api/v1/payments", headers=h,
                    json={"contract_id": account.contract_id, "amount": "1000.00", "external_id": "cover"})
    assert r.status_code == 201
    assert client.get(f"/api/v1/accounts/{account.id}", headers=h).json["status"] == "active"


def test_concurrent_duplicates(app, ctx):
    """If my system fires the same payment several times at once, is the money still counted once?"""
    token = gen_token("manager")
    contract = gen_contract()
    body = {"contract_id": contract.id, "amount": "50.00", "external_id": "burst-1"}
    db.session.rollback()  # end this session's transaction: on SQLite it would hold the write lock
    start = threading.Barrier(4)
    codes = []

    def send():
        client = app.test_client()  # own thread, own app context, own database session
        start.wait()
        codes.append(client.post("/api/v1/payments", headers=bearer(token), json=body).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 200, 200, 201]
    db.session.expire_all()
    assert ledger_rows(contract.id) == 1
    assert db.session.get(Contract, contract.id).balance == Decimal("50.00")


def test_a_payment_names_its_source(client, ctx):
    """Can my system say where a payment came from (its cash desk, a statement, an agent), is it
    "api" when I say nothing, and does the contract's ledger answer it; is a source I may not
    claim (online: the portal's own ЮKassa payments) or an unknown one refused by name?"""
    h = bearer(gen_token("manager", name="erp"))
    contract = gen_contract()
    sent = {"erp-cash-1": "cash", "erp-bank-1": "statement", "erp-term-1": "agent", "erp-plain-1": None}
    for external_id, source in sent.items():
        body = {"contract_id": contract.id, "amount": "10.00", "external_id": external_id}
        if source:
            body["source"] = source
        r = client.post("/api/v1/payments", headers=h, json=body)
        assert r.status_code == 201, r.json
        assert r.json["source"] == (source or "api") and r.json["cancels_id"] is None
    for bad in ("online", "bank", "", 5):
        r = client.post("/api/v1/payments", headers=h,
                        json={"contract_id": contract.id, "amount": "10.00", "external_id": f"x-{bad}", "source": bad})
        assert r.status_code == 422 and set(r.json["errors"]) == {"source"}, (bad, r.json)
    ledger = client.get(f"/api/v1/contracts/{contract.id}/ledger", headers=h).json["items"]
    assert {e["external_id"]: e["source"] for e in ledger} == {k: v or "api" for k, v in sent.items()}
    db.session.expire_all()
    assert sorted(db.session.scalars(db.select(LedgerEntry.source))) == sorted(v or "api" for v in sent.values())
    assert db.session.get(Contract, contract.id).balance == Decimal("40.00")
