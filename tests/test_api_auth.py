"""API v1: tokens, roles, JSON errors and the OpenAPI document."""
from portal.extensions import db
from portal.models import ApiToken
from tests.builders import gen_agent, gen_subscriber, gen_token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_no_token(client, ctx):
    """What does the API answer a request without a token, or with a wrong one?"""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        r = client.get("/api/v1/subscribers", headers=headers)
        assert r.status_code == 401
        assert r.json["code"] == 401 and "token" in r.json["message"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token(client, ctx):
    """Does a revoked token stop working at once?"""
    token = gen_token("admin", name="erp")
    assert client.get("/api/v1/subscribers", headers=bearer(token)).status_code == 200
    db.session.scalar(db.select(ApiToken).filter_by(name="erp")).revoked = True
    db.session.commit()
    assert client.get("/api/v1/subscribers", headers=bearer(token)).status_code == 401


def test_last_used_at(client, ctx):
    """Can an admin see that a token is in use?"""
    token = gen_token("viewer", name="monitoring")
    row = db.session.scalar(db.select(ApiToken).filter_by(name="monitoring"))
    assert row.last_used_at is None
    client.get("/api/v1/agents", headers=bearer(token))
    db.session.refresh(row)
    assert row.last_used_at is not None


def test_viewer_reads_only(client, ctx):
    """May a viewer token read everything and change nothing?"""
    token = gen_token("viewer")
    sub = gen_subscriber()
    for path in ("/api/v1/subscribers", f"/api/v1/subscribers/{sub.id}", "/api/v1/contracts", "/api/v1/accounts",
                 "/api/v1/agents", "/api/v1/services", "/api/v1/tariffs"):
        assert client.get(path, headers=bearer(token)).status_code == 200, path
    r = client.post("/api/v1/subscribers", json={"full_name": "Петров Пётр"}, headers=bearer(token))
    assert r.status_code == 403 and r.json["code"] == 403
    r = client.patch(f"/api/v1/subscribers/{sub.id}", json={"full_name": "X"}, headers=bearer(token))
    assert r.status_code == 403
    r = client.post("/api/v1/payments", json={"contract_id": 1, "amount": "1.00", "external_id": "x"},
                    headers=bearer(token))
    assert r.status_code == 403


def test_manager_writes_customers_not_reference_data(client, ctx):
    """May a manager token create subscribers but not agents, services or tariffs?"""
    token = gen_token("manager")
    r = client.post("/api/v1/subscribers", json={"full_name": "Петров Пётр"}, headers=bearer(token))
    assert r.status_code == 201
    for path, body in (("/api/v1/agents", {"name": "a", "kind": "services"}),
                       ("/api/v1/services", {"name": "s", "price": "1.00"}),
                       ("/api/v1/tariffs", {"name": "t"})):
        assert client.post(path, json=body, headers=bearer(token)).status_code == 403, path
    agent = gen_agent()
    assert client.patch(f"/api/v1/agents/{agent.id}", json={"name": "b"}, headers=bearer(token)).status_code == 403


def test_admin_writes_reference_data(client, ctx):
    """May an admin token create an agent, and is the change audited under the token's name?"""
    from portal.models import AuditEntry

    token = gen_token("admin", name="provisioning")
    r = client.post("/api/v1/agents", json={"name": "IPTV", "kind": "iptv"}, headers=bearer(token))
    assert r.status_code == 201
    assert r.json == {"id": r.json["id"], "name": "IPTV", "kind": "iptv", "platform": None}
    entry = db.session.scalar(db.select(AuditEntry).filter_by(action="agent.create"))
    assert entry.actor == "api:provisioning"


def test_unknown_route_and_method_answer_json(client, ctx):
    """Does a wrong URL or method under /api/v1 answer JSON rather than an HTML page?"""
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.is_json and r.json["code"] == 404
    r = client.delete("/api/v1/subscribers", headers=bearer(gen_token()))
    assert r.status_code == 405 and r.is_json and r.json["status"] == "Method Not Allowed"
    assert "GET" in r.headers["Allow"]


def test_openapi_document(client):
    """Does the OpenAPI document describe the bearer scheme and the one error shape?"""
    doc = client.get("/api/v1/openapi.json").json
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    post = doc["paths"]["/api/v1/payments"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert {"200", "201", "401", "403", "409", "422"} <= set(post["responses"])
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["errors"]["additionalProperties"] == {"type": "string"}
    # write-only secrets are documented as such and never answered
    assert doc["components"]["schemas"]["AccountCreate"]["properties"]["password"]["writeOnly"] is True
    assert "password" not in doc["components"]["schemas"]["Account"]["properties"]
