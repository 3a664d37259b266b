"""API v1 subscribers, contracts, agents, catalog services and tariffs: CRUD, search,
keyset pagination, and 422 answers that name every bad field and write nothing."""
from decimal import Decimal

from portal.billing import ledger
from portal.extensions import db
from portal.models import AuditEntry, Subscriber
from tests.builders import gen_contract, gen_service, gen_subscriber, gen_token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_subscriber_crud(client, ctx):
    """Can a manager create a subscriber, read it back, and change one field?"""
    h = bearer(gen_token("manager"))
    r = client.post("/api/v1/subscribers", headers=h, json={
        "full_name": "Сидорова Анна", "phones": ["+7 912 345-67-89"], "email": "anna@example.ru",
        "cabinet_login": "anna", "cabinet_password": "long-enough-secret"})
    assert r.status_code == 201, r.json
    sub = r.json
    assert sub["full_name"] == "Сидорова Анна" and sub["cabinet_login"] == "anna"
    # the cabinet password is write-only: neither it nor its hash comes back
    assert not {"cabinet_password", "cabinet_password_hash"} & set(sub)
    assert "secret" not in r.get_data(as_text=True) and "pbkdf2" not in r.get_data(as_text=True)
    assert client.get(f"/api/v1/subscribers/{sub['id']}", headers=h).json == sub
    r = client.patch(f"/api/v1/subscribers/{sub['id']}", headers=h, json={"notes": "звонить вечером"})
    assert r.status_code == 200
    assert r.json == {**sub, "notes": "звонить вечером"}
    assert db.session.get(Subscriber, sub["id"]).check_cabinet_password("long-enough-secret")


def test_subscriber_not_found(client, ctx):
    """What does reading or changing a subscriber that does not exist answer?"""
    h = bearer(gen_token("manager"))
    r = client.get("/api/v1/subscribers/999", headers=h)
    assert r.status_code == 404 and r.json["errors"] == {"subscriber_id": "not found"}
    assert client.patch("/api/v1/subscribers/999", headers=h, json={"notes": "x"}).status_code == 404


def test_bad_subscriber_names_every_field_and_writes_nothing(client, ctx):
    """When several fields are wrong, do I learn about all of them at once, with nothing saved?"""
    gen_subscriber(cabinet_login="taken")
    h = bearer(gen_token("manager"))
    before = db.session.scalar(db.select(db.func.count()).select_from(Subscriber))
    r = client.post("/api/v1/subscribers", headers=h, json={
        "full_name": 42,                 # wrong type: found by the schema
        "kind": "alien",                 # not a choice: found by the schema
        "email": "not-an-address",       # found by the schema (the document states billing's rule)
        "phones": ["call me"],           # found by the schema, naming the item
        "cabinet_login": "taken",        # found by the billing rules (uniqueness)
        "colour": "blue",                # unknown field
    })
    assert r.status_code == 422
    assert r.json["code"] == 422 and r.json["status"] == "Unprocessable Entity"
    assert set(r.json["errors"]) == {"full_name", "kind", "email", "phones.0", "cabinet_login", "colour"}
    assert all(isinstance(m, str) and m for m in r.json["errors"].values())
    assert db.session.scalar(db.select(db.func.count()).select_from(Subscriber)) == before
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)
                             .filter_by(action="subscriber.create")) == 1  # the builder's own


def test_bad_body_shapes(client, ctx):
    """What does the API answer a body that is not an object, or bad query parameters?"""
    h = bearer(gen_token("manager"))
    r = client.post("/api/v1/subscribers", headers=h, json=["not", "an", "object"])
    assert r.status_code == 422 and "_" in r.json["errors"]
    r = client.get("/api/v1/subscribers?limit=0&after=-1", headers=h)
    assert r.status_code == 422 and set(r.json["errors"]) == {"limit", "after"}


def test_search_and_keyset_pagination(client, ctx):
    """Can I find subscribers by name, e-mail or phone, and walk a long list page by page?"""
    h = bearer(gen_token("viewer"))
    for i in range(7):
        gen_subscriber(full_name=f"Кузнецов {i}", email=f"k{i}@example.ru")
    gen_subscriber(full_name="Орлова Мария", phones=["+7 999 111-22-33"], email="maria@example.ru")
    seen, after = [], None
    while True:
        query = {"limit": 3, **({"after": after} if after else {})}
        r = client.get("/api/v1/subscribers", headers=h, query_string=query)
        assert r.status_code == 200
        seen += [s["id"] for s in r.json["items"]]
        after = r.json["next_after"]
        if after is None:
            break
        assert after == seen[-1]
    assert len(seen) == 8 and seen == sorted(seen)
    find = lambda q: [s["full_name"] for s in client.get("/api/v1/subscribers", headers=h,  # noqa: E731
                                                          query_string={"q": q}).json["items"]]
    assert find("Орлова") == ["Орлова Мария"]
    assert find("MARIA@") == ["Орлова Мария"]
    assert find("111-22") == ["Орлова Мария"]
    assert len(find("Кузнецов")) == 7
    assert find("100%_") == []


def test_contract_with_balance_and_ledger(client, ctx):
    """Does a contract show its balance, and its ledger every posting with its external id?"""
    h = bearer(gen_token("manager"))
    sub = gen_subscriber()
    r = client.post("/api/v1/contracts", headers=h, json={"subscriber_id": sub.id, "credit_limit": "100.50"})
    assert r.status_code == 201, r.json
    contract = r.json
    assert contract["balance"] == "0.00" and contract["credit_limit"] == "100.50"
    assert contract["number"]  # generated
    ledger.payment(contract["id"], Decimal("300"), actor="test", external_id="bank-1", comment="из банка")
    ledger.payment(contract["id"], Decimal("20.05"), actor="test", external_id="bank-2")
    db.session.commit()
    r = client.get(f"/api/v1/contracts/{contract['id']}", headers=h)
    assert r.json["balance"] == "320.05"
    r = client.get(f"/api/v1/contracts/{contract['id']}/ledger", headers=h, query_string={"limit": 1})
    first = r.json["items"][0]
    assert first["kind"] == "payment" and first["amount"] == "300.00" and first["external_id"] == "bank-1"
    r = client.get(f"/api/v1/contracts/{contract['id']}/ledger", headers=h,
                   query_string={"after": r.json["next_after"]})
    assert [e["amount"] for e in r.json["items"]] == ["20.05"] and r.json["next_after"] is None
    r = client.get(f"/api/v1/contracts/{contract['id']}/ledger", headers=h, query_string={"q": "банк"})
    assert [e["external_id"] for e in r.json["items"]] == ["bank-1"]
    assert client.get("/api/v1/contracts/999/ledger", headers=h).status_code == 404


def test_contract_search_and_change(client, ctx):
    """Can I find a contract by number or subscriber, and change its credit limit?"""
    h = bearer(gen_token("manager"))
    sub = gen_subscriber()
    c1 = gen_contract(sub, number="A-100")
    gen_contract(number="B-200")
    r = client.get("/api/v1/contracts", headers=h, query_string={"q": "a-1"})
    assert [c["number"] for c in r.json["items"]] == ["A-100"]
    r = client.get("/api/v1/contracts", headers=h, query_string={"subscriber_id": sub.id})
    assert [c["id"] for c in r.json["items"]] == [c1.id]
    r = client.patch(f"/api/v1/contracts/{c1.id}", headers=h, json={"credit_limit": "500", "do_not_block": True})
    assert r.status_code == 200 and r.json["credit_limit"] == "500.00" and r.json["do_not_block"] is True
    r = client.patch(f"/api/v1/contracts/{c1.id}", headers=h, json={"credit_limit": 5, "number": "B-200"})
    assert r.status_code == 422 and set(r.json["errors"]) == {"credit_limit", "number"}
    assert client.get(f"/api/v1/contracts/{c1.id}", headers=h).json["number"] == "A-100"


def test_amounts_are_decimal_strings(client, ctx):
    """Are amounts strings both ways, with a float refused rather than rounded?"""
    h = bearer(gen_token("admin"))
    r = client.post("/api/v1/services", headers=h, json={"name": "ТВ", "price": 0.1})
    assert r.status_code == 422 and "price" in r.json["errors"]
    r = client.post("/api/v1/services", headers=h, json={"name": "ТВ", "price": "199.90"})
    assert r.status_code == 201 and r.json["price"] == "199.90"


def test_reference_data(client, ctx):
    """Can an admin manage agents, catalog services and tariffs, and find them again?"""
    h = bearer(gen_token("admin"))
    r = client.post("/api/v1/agents", headers=h, json={"name": "Домофоны", "kind": "intercom", "platform": "webhook"})
    assert r.status_code == 201, r.json
    agent = r.json
    r = client.patch(f"/api/v1/agents/{agent['id']}", headers=h, json={"platform": None})
    assert r.json["platform"] is None and r.json["name"] == "Домофоны"
    r = client.post("/api/v1/agents", headers=h, json={"name": "Домофоны", "kind": "radio"})
    assert r.status_code == 422 and set(r.json["errors"]) == {"kind", "name"}

    r = client.post("/api/v1/services", headers=h, json={
        "name": "Кино", "price": "99.00", "charge_period": "month", "charge_mode": "daily_prorata",
        "platform": "webhook", "external_id": "cinema"})
    assert r.status_code == 201, r.json
    svc = r.json
    assert svc["charge_mode"] == "daily_prorata" and svc["external_id"] == "cinema"
    r = client.patch(f"/api/v1/services/{svc['id']}", headers=h, json={"price": "109.00"})
    assert r.json["price"] == "109.00"
    r = client.get("/api/v1/services", headers=h, query_string={"q": "cinem"})
    assert [s["id"] for s in r.json["items"]] == [svc["id"]]

    other = gen_service("50.00")
    r = client.post("/api/v1/tariffs", headers=h, json={
        "name": "Базовый", "monthly_fee": "500.00", "service_ids": [svc["id"], other.id]})
    assert r.status_code == 201, r.json
    tariff = r.json
    assert tariff["service_ids"] == [svc["id"], other.id] and tariff["fee_service_id"]
    r = client.patch(f"/api/v1/tariffs/{tariff['id']}", headers=h, json={"service_ids": [other.id]})
    assert r.json["service_ids"] == [other.id] and r.json["monthly_fee"] == "500.00"
    r = client.post("/api/v1/tariffs", headers=h, json={"name": "Базовый", "service_ids": [99999]})
    assert r.status_code == 422 and set(r.json["errors"]) == {"name", "service_ids"}
    r = client.get("/api/v1/tariffs", headers=h, query_string={"q": "базов"})
    assert r.status_code == 200
