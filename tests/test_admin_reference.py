"""Reference data in the staff interface: agents, services, tariffs, extra fields, platform
connections, staff users and API tokens."""
from __future__ import annotations

import json
import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import (
    Agent,
    ApiToken,
    AuditEntry,
    CatalogService,
    ExtraFieldDefinition,
    PlatformConnection,
    StaffUser,
    Tariff,
)
from tests.builders import gen_agent, gen_service, gen_staff, gen_tariff
from tests.helpers import login

HX = {"HX-Request": "true"}


def csrf(client, url: str = "/agents") -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(client, url: str, data: dict, htmx: bool = True, token_page: str = "/"):
    """A form post as the browser sends it (CSRF token in the form, HTMX header if asked)."""
    data = {"csrf_token": csrf(client, token_page), **data}
    return client.post(url, data=data, headers=HX if htmx else {})


def as_admin(app, client, login_name="boss"):
    with app.app_context():
        user_id = gen_staff(login_name, role="admin").id
    login(client, login_name)
    return user_id


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# -- the catalog ---------------------------------------------------------------------------------

def test_admin_creates_and_edits_an_agent(app, client):
    """I create an agent «Интернет» and rename it: the list shows the new name, the audit log both."""
    as_admin(app, client)
    r = post(client, "/agents/new", {"name": "Интернет", "kind": "radius", "platform": ""})
    assert r.status_code == 200 and "<html" not in r.get_data(as_text=True)
    # the toast; HTTP headers are latin-1, so the Russian name travels escaped
    assert json.loads(r.headers["HX-Trigger"])["toast"].endswith("Интернет")
    assert r.headers["HX-Trigger"].isascii()
    # the table body comes along out of band, with the new row in it
    assert 'id="rows" hx-swap-oob="true"' in r.get_data(as_text=True) and "Интернет" in r.get_data(as_text=True)
    with app.app_context():
        agent = db.session.scalar(select(Agent).filter_by(name="Интернет"))
        assert agent.kind == "radius" and agent.platform is None
        agent_id = agent.id

    edit = client.get(f"/agents/{agent_id}").get_data(as_text=True)
    assert 'value="Интернет"' in edit
    r = post(client, f"/agents/{agent_id}", {"name": "Интернет (PPPoE)", "kind": "radius", "platform": ""},
             htmx=False)
    assert r.status_code == 303
    listing = client.get("/agents").get_data(as_text=True)
    assert "Интернет (PPPoE)" in listing
    assert audit_actions(app)[-2:] == ["agent.create", "agent.update"]


def test_a_bad_service_names_the_field_and_keeps_what_i_typed(app, client):
    """A price «12,345» is refused beside the price field, my typing stays, nothing is saved."""
    as_admin(app, client)
    r = post(client, "/services/new", {"name": "Кинозал", "price": "12,345", "charge_period": "month",
                                       "charge_mode": "monthly_advance", "platform": "", "external_id": ""})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "<html" not in html
    error = re.search(r'<span class="error" data-field="price">([^<]+)<', html).group(1)
    assert error == "не больше двух знаков после запятой"  # the billing message, in Russian
    assert 'value="Кинозал"' in html and 'value="12,345"' in html
    with app.app_context():
        assert db.session.scalar(select(CatalogService).filter_by(name="Кинозал")) is None


def test_a_service_on_a_platform_needs_its_external_id(app, client):
    """A service on the webhook platform without an external id: the error sits beside that field."""
    as_admin(app, client)
    r = post(client, "/services/new", {"name": "ТВ", "price": "100", "charge_period": "month",
                                       "charge_mode": "daily_prorata", "platform": "webhook", "external_id": ""},
             htmx=False)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "<html" in html  # without HTMX: the whole page, form open
    assert 'data-field="external_id"' in html
    with app.app_context():
        assert db.session.scalar(select(CatalogService).filter_by(name="ТВ")) is None


def test_services_list_searches_and_edits(app, client):
    """Typing «кино» keeps only the matching services; editing the price shows the new price."""
    with app.app_context():
        kino = gen_service("199.00", name="Кинозал").id
        gen_service("50.00", name="Статический IP")
    as_admin(app, client)
    rows = client.get("/services?q=кино", headers=HX).get_data(as_text=True)
    assert "<html" not in rows and "Кинозал" in rows and "Статический IP" not in rows
    r = post(client, f"/services/{kino}", {"name": "Кинозал", "price": "249.50", "charge_period": "month",
                                           "charge_mode": "monthly_advance", "platform": "", "external_id": ""})
    assert r.status_code == 200 and 'value="249.50"' in r.get_data(as_text=True)
    assert "249,50" in client.get("/services").get_data(as_text=True)


def test_tariff_with_its_services(app, client):
    """I make a tariff offering two services: the tariffs list names both; unticking one removes it."""
    with app.app_context():
        a, b = gen_service(name="Антивирус").id, gen_service(name="Кинозал").id
    as_admin(app, client)
    r = post(client, "/tariffs/new", {"name": "Домашний", "kind": "internet", "monthly_fee": "500",
                                      "service_ids": [str(a), str(b)]})
    assert r.status_code == 200
    row = re.search(r"<tr>\s*<td>Домашний</td>.*?</tr>", client.get("/tariffs").get_data(as_text=True), re.S).group(0)
    assert "Антивирус" in row and "Кинозал" in row and "500,00" in row
    with app.app_context():
        tariff_id = db.session.scalar(select(Tariff.id).filter_by(name="Домашний"))
        # the hidden monthly-fee service is not offered as a catalog service
        fee_name = db.session.get(Tariff, tariff_id).fee_service.name
    assert fee_name not in client.get("/services").get_data(as_text=True)
    assert fee_name not in client.get(f"/tariffs/{tariff_id}").get_data(as_text=True)

    post(client, f"/tariffs/{tariff_id}", {"name": "Домашний", "kind": "internet", "monthly_fee": "500",
                                           "service_ids": [str(b)]})
    row = re.search(r"<tr>\s*<td>Домашний</td>.*?</tr>", client.get("/tariffs").get_data(as_text=True), re.S).group(0)
    assert "Антивирус" not in row and "Кинозал" in row


def test_extra_field_name_rule_is_shown_beside_the_name(app, client):
    """A field name with capitals and a space is refused with the rule; a good one is created."""
    as_admin(app, client)
    r = post(client, "/extra-fields/new", {"name": "Isvyaz login", "title": "Логин Интерсвязи", "type": "string"})
    assert r.status_code == 422 and 'data-field="name"' in r.get_data(as_text=True)
    assert 'value="Логин Интерсвязи"' in r.get_data(as_text=True)
    r = post(client, "/extra-fields/new", {"name": "isvyaz_login", "title": "Логин Интерсвязи", "type": "string",
                                           "pattern": r"^\d+$", "required": "1"})
    assert r.status_code == 200
    with app.app_context():
        field = db.session.scalar(select(ExtraFieldDefinition).filter_by(name="isvyaz_login"))
        assert field.required and field.pattern == r"^\d+$"


def test_viewer_reads_the_catalog_but_cannot_change_it(app, client):
    """A viewer sees agents and tariffs without edit buttons, and a change they post is refused."""
    with app.app_context():
        gen_staff("watcher", role="viewer")
        agent = gen_agent(name="Домофония", kind="intercom")
        agent_id = agent.id
        gen_tariff(name="Базовый")
    login(client, "watcher")
    page = client.get("/agents").get_data(as_text=True)
    assert "Домофония" in page and f"/agents/{agent_id}" not in page and "/agents/new" not in page
    assert "Базовый" in client.get("/tariffs").get_data(as_text=True)
    r = post(client, f"/agents/{agent_id}", {"name": "Взлом", "kind": "services"})
    assert r.status_code == 403
    assert post(client, "/agents/new", {"name": "Взлом", "kind": "services"}).status_code == 403
    assert client.get("/staff").status_code == 403 and client.get("/api-tokens").status_code == 403
    with app.app_context():
        assert db.session.get(Agent, agent_id).name == "Домофония"


# -- platform connections ------------------------------------------------------------------------

def test_connection_password_is_write_only(app, client):
    """The password I type is stored encrypted, never shown back; an empty field keeps it."""
    secret = "s3cr3t-Passw0rd"
    as_admin(app, client)
    r = post(client, "/connections/webhook", {"url": "https://hooks.example.net/portal", "login": "portal",
                                              "password": secret, "options": "retries=3", "enabled": "1"})
    answers = [r.get_data(as_text=True)]
    assert r.status_code == 200 and "https://hooks.example.net/portal" in answers[0]
    with app.app_context():
        stored = db.session.scalar(select(PlatformConnection).filter_by(kind="webhook"))
        enc = stored.password_enc
        assert enc and secret not in enc and stored.options == {"retries": "3"}
    # a change without a password keeps it; a bad URL answers 422 without echoing what I typed there
    r = post(client, "/connections/webhook", {"url": "https://hooks.example.net/v2", "login": "portal",
                                              "password": "", "options": "retries=3", "enabled": "1"})
    answers.append(r.get_data(as_text=True))
    r = post(client, "/connections/webhook", {"url": "ftp://x", "login": "portal", "password": "other-secret-1",
                                              "options": "", "enabled": "1"})
    answers.append(r.get_data(as_text=True))
    assert r.status_code == 422 and 'data-field="url"' in answers[-1]
    answers.append(client.get("/connections").get_data(as_text=True))
    answers.append(client.get("/connections?lang=en").get_data(as_text=True))
    for html in answers:
        assert secret not in html and enc not in html and "other-secret-1" not in html
        assert 'name="password" type="password" value=""' in html
    assert re.search(r"<dt>Password</dt><dd>set</dd>", answers[-1])
    with app.app_context():
        stored = db.session.scalar(select(PlatformConnection).filter_by(kind="webhook"))
        assert stored.password_enc == enc and stored.url == "https://hooks.example.net/v2"
        from portal.billing.crypto import decrypt

        assert decrypt(stored.password_enc) == secret
        audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action.like("platform.connection.%"))).all()
        assert len(audit) == 2 and all(secret not in str(e.after) for e in audit)


def test_viewer_sees_connections_without_a_form(app, client):
    """A viewer sees where the platform is, but has no form and cannot post one."""
    with app.app_context():
        gen_staff("watcher2", role="viewer")
    login(client, "watcher2")
    page = client.get("/connections").get_data(as_text=True)
    assert "Webhook" in page and 'name="password"' not in page
    assert post(client, "/connections/webhook", {"url": "https://evil.example"}).status_code == 403


# -- staff users and API tokens ------------------------------------------------------------------

def test_admin_creates_a_manager_who_can_log_in(app, client):
    """I create a manager with a password; a short password is refused first; the new user logs in."""
    as_admin(app, client)
    r = post(client, "/staff/new", {"login": "masha", "full_name": "Мария", "role": "manager",
                                    "password": "short"}, token_page="/staff")
    assert r.status_code == 422 and 'data-field="password"' in r.get_data(as_text=True)
    assert 'value="masha"' in r.get_data(as_text=True) and 'value="short"' not in r.get_data(as_text=True)
    r = post(client, "/staff/new", {"login": "masha", "full_name": "Мария", "role": "manager",
                                    "password": "long enough"}, token_page="/staff")
    assert r.status_code == 204 and r.headers["HX-Redirect"].endswith("/staff")
    assert "masha" in client.get("/staff").get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(StaffUser).filter_by(login="masha"))
        assert user.role == "manager" and user.password_hash != "long enough"
    assert "staff.create" in audit_actions(app)
    other = app.test_client()
    assert login(other, "masha", "long enough").status_code == 302


def test_admin_cannot_disable_or_demote_themselves(app, client):
    """Disabling myself or taking my own admin role is refused with a clear message."""
    me = as_admin(app, client)
    client.get("/?lang=en")
    assert "you cannot disable yourself" in client.get(f"/staff/{me}").get_data(as_text=True).lower()
    r = post(client, f"/staff/{me}/enabled", {"enabled": "0"})
    assert r.status_code == 409 and 'role="alert">you cannot disable yourself<' in r.get_data(as_text=True)
    r = post(client, f"/staff/{me}", {"full_name": "Я", "role": "viewer"})
    assert r.status_code == 422
    assert 'data-field="role">you cannot take the admin role from yourself<' in r.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(StaffUser, me)
        assert user.is_enabled and user.role == "admin"


def test_disabled_staff_user_cannot_log_in_and_new_password_works(app, client):
    """I disable Pavel: he can no longer log in; enabled with a new password, he can."""
    as_admin(app, client)
    with app.app_context():
        pavel = gen_staff("pavel", role="manager").id
    assert post(client, f"/staff/{pavel}/enabled", {"enabled": "0"}).status_code == 200
    assert login(app.test_client(), "pavel").status_code == 200  # the login page again
    post(client, f"/staff/{pavel}/enabled", {"enabled": "1"})
    r = post(client, f"/staff/{pavel}/password", {"password": "brand-new-pass"})
    assert r.status_code == 200
    assert login(app.test_client(), "pavel", "brand-new-pass").status_code == 302
    r = post(client, f"/staff/{pavel}", {"full_name": "Павел", "role": "viewer"})
    assert r.status_code == 200
    with app.app_context():
        assert db.session.get(StaffUser, pavel).role == "viewer"
    assert audit_actions(app)[-4:] == ["staff.disable", "staff.enable", "staff.password", "staff.update"]


def test_api_token_is_shown_once_and_revoked_token_is_refused(app, client):
    """A new token is shown once, works on the API, shows only its prefix later, and stops working when revoked."""
    as_admin(app, client)
    client.get("/?lang=en")
    r = post(client, "/api-tokens/new", {"name": "1С", "role": "viewer"}, token_page="/api-tokens")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    plain = re.search(r'id="new-token" readonly value="(pt_[^"]+)"', html).group(1)
    assert client.get("/api/v1/agents", headers={"Authorization": f"Bearer {plain}"}).status_code == 200

    later = client.get("/api-tokens").get_data(as_text=True)
    assert plain not in later and plain[:10] in later and "1С" in later
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id).filter_by(name="1С"))
    r = post(client, f"/api-tokens/{token_id}/revoke", {}, token_page="/api-tokens")
    assert r.status_code == 200 and "<html" not in r.get_data(as_text=True)
    assert "revoked" in r.get_data(as_text=True) and "Revoke</button>" not in r.get_data(as_text=True)
    assert client.get("/api/v1/agents", headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    assert audit_actions(app)[-2:] == ["api_token.create", "api_token.revoke"]


def test_a_token_without_a_name_is_not_created(app, client):
    """A token needs a name: the error names the field and no token is made."""
    as_admin(app, client)
    r = post(client, "/api-tokens/new", {"name": " ", "role": "admin"}, token_page="/api-tokens")
    assert r.status_code == 422 and 'data-field="name"' in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(ApiToken)) is None


def test_manager_cannot_open_staff_or_tokens(app, client):
    """A manager gets the 403 page on the staff and token pages and cannot issue a token."""
    with app.app_context():
        gen_staff("mgr", role="manager")
    login(client, "mgr")
    assert client.get("/staff").status_code == 403
    assert post(client, "/api-tokens/new", {"name": "x", "role": "admin"}).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(ApiToken)) is None


def test_platforms_with_a_connection_check_offer_it_on_the_connection_page(app, client):
    """Once a platform is connected, can I check the connection from its panel?"""
    from portal.platforms.connections import save_connection

    as_admin(app, client)
    with app.app_context():
        save_connection("stalker", url="http://127.0.0.1:9/stalker_portal/api/", login="a", password="b", actor="t")
        db.session.commit()
    html = client.get("/connections").get_data(as_text=True)
    panel = html.split('id="conn-stalker"')[1].split("</section>")[0]
    assert 'hx-post="/stalker/check"' in panel
    with app.app_context():
        save_connection("smotreshka", url="http://127.0.0.1:9", actor="t")
        db.session.commit()
    html = client.get("/connections").get_data(as_text=True)
    assert 'hx-post="/smotreshka/check"' in html.split('id="conn-smotreshka"')[1].split("</section>")[0]
    webhook = html.split('id="conn-webhook"')[1].split("</section>")[0]
    assert "/check" not in webhook  # the webhook has no check, and no stored connection here
