"""API v1 accounts: create and change, the status actions with the money they move, and
services assigned to an account."""
from decimal import Decimal

from portal.billing import ledger
from portal.extensions import db
from portal.models import Account, AssignedService
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_tariff, gen_token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def balance(client, h, contract_id) -> Decimal:
    return Decimal(client.get(f"/api/v1/contracts/{contract_id}", headers=h).json["balance"])


def paid_contract(amount="1000"):
    contract = gen_contract()
    ledger.payment(contract.id, Decimal(amount), actor="test", external_id=f"seed-{contract.id}")
    db.session.commit()
    return contract


def test_create_account_never_shows_the_password(client, ctx):
    """Can I create an account with a password and never see that password again?"""
    h = bearer(gen_token("manager"))
    contract, agent, tariff = gen_contract(), gen_agent(), gen_tariff()
    r = client.post("/api/v1/accounts", headers=h, json={
        "contract_id": contract.id, "login": "flat42", "password": "s3cret-pass", "agent_id": agent.id,
        "tariff_id": tariff.id, "house": "ул. Ленина, 1", "flat": "42"})
    assert r.status_code == 201, r.json
    acc = r.json
    assert acc["status"] == "inactive" and acc["login"] == "flat42" and acc["block_reasons"] == []
    assert acc["tariff_id"] == tariff.id and acc["multi_tariff_ids"] == [] and acc["extra"] == {}
    text = r.get_data(as_text=True)
    assert "password" not in text and "s3cret" not in text
    assert db.session.get(Account, acc["id"]).password_enc  # stored, encrypted
    r = client.patch(f"/api/v1/accounts/{acc['id']}", headers=h, json={"flat": "43", "password": "another-1"})
    assert r.status_code == 200 and r.json["flat"] == "43" and "password" not in r.get_data(as_text=True)
    r = client.get("/api/v1/accounts", headers=h, query_string={"q": "flat4", "contract_id": contract.id})
    assert [a["id"] for a in r.json["items"]] == [acc["id"]]


def test_bad_account_names_every_field(client, ctx):
    """Does a bad new account name each wrong field, and create nothing?"""
    h = bearer(gen_token("manager"))
    existing = gen_account(activate=False)
    r = client.post("/api/v1/accounts", headers=h, json={
        "contract_id": 999999, "login": existing.login, "password": "x", "agent_id": "one", "tariff_id": 999999})
    assert r.status_code == 422
    assert set(r.json["errors"]) == {"contract_id", "login", "password", "agent_id", "tariff_id"}
    assert db.session.scalar(db.select(db.func.count()).select_from(Account)) == 1


def test_status_actions_move_money(client, ctx):
    """Do activate, block, unblock and disable change the status, charge and refund?"""
    h = bearer(gen_token("manager"))
    contract = paid_contract()
    svc = gen_service("300.00")
    account = gen_account(contract=contract, tariff=gen_tariff([svc]), activate=False, services=[svc])
    url = f"/api/v1/accounts/{account.id}"
    start = balance(client, h, contract.id)
    assert start == Decimal("1000.00")  # an inactive account is not charged

    r = client.post(f"{url}/activate", headers=h)
    assert r.status_code == 200 and r.json["status"] == "active"
    charged = balance(client, h, contract.id)
    assert charged < start

    r = client.post(f"{url}/block", headers=h)
    assert r.status_code == 200 and r.json["status"] == "blocked" and r.json["block_reasons"] == ["manager"]
    refunded = balance(client, h, contract.id)
    assert refunded > charged

    r = client.post(f"{url}/block", headers=h)
    assert r.status_code == 422 and "reason" in r.json["errors"]

    r = client.post(f"{url}/unblock", headers=h)
    assert r.status_code == 200 and r.json["status"] == "active" and r.json["block_reasons"] == []
    assert balance(client, h, contract.id) < refunded

    r = client.post(f"{url}/disable", headers=h)
    assert r.status_code == 200 and r.json["status"] == "disabled"
    assert balance(client, h, contract.id) == refunded

    r = client.post(f"{url}/unblock", headers=h)
    assert r.status_code == 422 and r.json["errors"]
    assert client.post("/api/v1/accounts/999999/activate", headers=h).status_code == 404
    assert client.post(f"{url}/activate", headers=bearer(gen_token("viewer"))).status_code == 403


def test_assign_change_and_end_a_service(client, ctx):
    """Can I assign a service to an account, give it an expiry, and end it with a refund?"""
    h = bearer(gen_token("manager"))
    contract = paid_contract()
    svc, not_offered = gen_service("300.00"), gen_service("10.00")
    account = gen_account(contract=contract, tariff=gen_tariff([svc]))
    url = f"/api/v1/accounts/{account.id}/services"
    start = balance(client, h, contract.id)

    r = client.post(url, headers=h, json={"service_id": svc.id})
    assert r.status_code == 201, r.json
    assigned = r.json
    assert assigned["state"] == "active" and assigned["service_id"] == svc.id and assigned["ends_on"] is None
    assert assigned["service_name"] == svc.name
    charged = balance(client, h, contract.id)
    assert charged < start

    r = client.get(url, headers=h)
    assert [s["id"] for s in r.json["items"]] == [assigned["id"]]

    r = client.patch(f"{url}/{assigned['id']}", headers=h, json={"ends_on": "2999-12-31"})
    assert r.status_code == 200 and r.json["ends_on"] == "2999-12-31"
    r = client.patch(f"{url}/{assigned['id']}", headers=h, json={"ends_on": "2000-01-01"})
    assert r.status_code == 422 and "ends_on" in r.json["errors"]

    r = client.delete(f"{url}/{assigned['id']}", headers=h)
    assert r.status_code == 200 and r.json["state"] == "ended"
    assert balance(client, h, contract.id) > charged
    r = client.delete(f"{url}/{assigned['id']}", headers=h)
    assert r.status_code == 422 and "state" in r.json["errors"]

    r = client.post(url, headers=h, json={"service_id": not_offered.id, "starts_on": "tomorrow"})
    assert r.status_code == 422 and set(r.json["errors"]) == {"service_id", "starts_on"}
    assert db.session.scalar(db.select(db.func.count()).select_from(AssignedService)
                             .filter_by(service_id=not_offered.id)) == 0


def test_assigned_service_belongs_to_its_account(client, ctx):
    """Can I reach an assigned service only through the account it belongs to?"""
    h = bearer(gen_token("manager"))
    svc = gen_service()
    mine, other = gen_account(services=[svc]), gen_account()
    assigned_id = mine.services[0].id
    assert client.get(f"/api/v1/accounts/{mine.id}/services/{assigned_id}", headers=h).status_code == 200
    r = client.delete(f"/api/v1/accounts/{other.id}/services/{assigned_id}", headers=h)
    assert r.status_code == 404 and r.json["errors"] == {"assigned_id": "not found"}
    assert db.session.get(AssignedService, assigned_id).state == "active"
