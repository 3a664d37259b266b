"""Hostile values in every HTML form and every API write: a field error, never a 500, nothing written.

The probe finds the forms itself: it opens the admin's and the cabinet's pages (the menu and
the cards of one subscriber, contract, account, tariff, service, agent and staff member), reads
each <form method="post">, and posts it once per (field, hostile value) with the other fields
as the page filled them. API write operations come from the OpenAPI document.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEntry, LedgerEntry
from tests.builders import (
    gen_account,
    gen_agent,
    gen_contract,
    gen_service,
    gen_staff,
    gen_subscriber,
    gen_tariff,
    gen_token,
)

BIG = "9" * 39
HOSTILE = ["1e30", "-1e30", BIG, str(2**63), str(2**64 + 5), "12\x0034", "x" * 200_000, "1 000,50\r\nX: y"]
# refused wherever they go: these may write nothing
NEVER_STORED = ("12\x0034", "x" * 200_000)
# posts that end the probe's own session or change who may log in
SKIP_ACTIONS = ("/logout", "/sessions", "/enabled", "/password")


class Forms(HTMLParser):
    """<form method=post> -> (action, {field: value}); and the page's links."""

    def __init__(self):
        super().__init__()
        self.forms, self.links, self._form = [], set(), None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and (a.get("href") or "").startswith("/"):
            self.links.add(a["href"].split("#")[0])
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._form = (a.get("action") or "", {})
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "select", "textarea") and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                self._form[1].setdefault(a["name"], None)
            else:
                self._form[1].setdefault(a["name"], a.get("value") or "1")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def written() -> tuple[int, int]:
    return (db.session.scalar(select(func.count()).select_from(AuditEntry)),
            db.session.scalar(select(func.count()).select_from(LedgerEntry)))


def pages_and_forms(client, start: list[str], depth: int = 2) -> dict[str, dict]:
    seen, forms, frontier = set(), {}, list(start)
    for _ in range(depth):
        nxt = []
        for path in frontier:
            if path in seen or path.startswith(("/static", "/jobs/rq", "/api", "/logout")):
                continue
            seen.add(path)
            try:
                r = client.get(path)
            except Exception:  # noqa: BLE001  (a page that fails to render is not a form to probe)
                continue
            if r.status_code != 200 or "text/html" not in r.content_type:
                continue
            parser = Forms()
            parser.feed(r.get_data(as_text=True))
            for action, fields in parser.forms:
                action = action or path.split("?")[0]
                if action.startswith("/") and not action.endswith(("/logout", "/sessions")):
                    forms.setdefault(action, fields)
            nxt += [link for link in parser.links if link.split("?")[0].count("/") <= 4]
        frontier = nxt
    return forms


@pytest.fixture
def world(app):
    with app.app_context():
        gen_staff("prober")
        service = gen_service("300.00")
        subscriber = gen_subscriber(cabinet_login="victim", cabinet_password="victim-pass-1")
        contract = gen_contract(subscriber=subscriber)
        account = gen_account(contract=contract, services=[service], agent=gen_agent(), tariff=gen_tariff([service]))
        gen_staff("other")
        return {"contract": contract.id, "account": account.id, "subscriber": subscriber.id}


def login(client, path, login, password):
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(path, data={"login": login, "password": password, "csrf_token": token}).status_code == 302


def probe(app, client, forms: dict, skip=SKIP_ACTIONS) -> list[str]:
    failures = []
    for action, fields in forms.items():
        if action.endswith(skip):
            continue
        for name in [n for n in fields if n != "csrf_token"]:
            for value in HOSTILE:
                data = {k: v for k, v in {**fields, name: value}.items() if v is not None}
                with app.app_context():
                    before = written()
                try:
                    r = client.post(action, data=data)
                except Exception as e:  # noqa: BLE001  (TESTING lets a view's exception through: a 500)
                    failures.append(f"{action} {name}={value[:20]!r}: {type(e).__name__}: {e}"[:300])
                    continue
                with app.app_context():
                    after = written()
                if r.status_code >= 500:
                    failures.append(f"{action} {name}={value[:20]!r}: {r.status_code}")
                elif value in NEVER_STORED and after != before and fields[name] is not None:
                    # (a checkbox, default None, is on whatever its value: that change is fine)
                    failures.append(f"{action} {name}={value[:20]!r}: written")
    return failures


def test_hostile_values_in_the_admin_forms_are_field_errors(app, client, world):
    """Every admin form, every field, every hostile value: never a 500, refused values not stored."""
    login(client, "/login", "prober", "password123")
    start = ["/", "/subscribers", "/contracts", "/accounts", "/payments", "/tariffs", "/services", "/agents",
             "/staff", "/api-tokens", "/extra-fields", f"/subscribers/{world['subscriber']}",
             f"/contracts/{world['contract']}", f"/accounts/{world['account']}"]
    forms = pages_and_forms(client, start)
    assert len(forms) >= 15, sorted(forms)  # the probe did find the forms
    failures = probe(app, client, forms)
    assert not failures, "\n".join(failures)


def test_hostile_values_in_the_cabinet_forms_are_field_errors(app, client, world):
    login(client, "/cabinet/login", "victim", "victim-pass-1")
    forms = pages_and_forms(client, ["/cabinet/", f"/cabinet/accounts/{world['account']}"])
    assert "/cabinet/password" in forms, sorted(forms)
    failures = probe(app, client, forms, skip=("/logout",))
    assert not failures, "\n".join(failures)


def test_hostile_values_in_the_login_forms(app, client, world, monkeypatch):
    """The two login forms, before anyone is logged in (no per-login delay: it only slows the probe)."""
    monkeypatch.setitem(app.config, "LOGIN_DELAY_MAX", 0)
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", 10**6)
    monkeypatch.setitem(app.config, "LOGIN_MAX_ADDRESS_FAILURES", 10**6)
    forms = pages_and_forms(client, ["/login", "/cabinet/login"], depth=1)
    assert {"/login", "/cabinet/login"} <= set(forms), sorted(forms)
    failures = probe(app, client, forms)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", ["/cabinet/login?next=/cabinet/%0d%0aSet-Cookie:x=1",
                                  "/cabinet/login?next=/cabinet/%0aX"])
def test_cr_lf_in_next_is_refused(client, path):
    """A crafted link with CR/LF in ``next``: refused, not followed into a header."""
    r = client.get(path)
    assert r.status_code == 422 and "Set-Cookie" not in str(r.headers.get("Location"))


def test_ids_above_bigint_in_urls_are_not_found(app, client, world):
    login(client, "/login", "prober", "password123")
    for path in (f"/accounts/{2**63}", f"/contracts/{BIG}", f"/subscribers/{2**64}"):
        assert client.get(path).status_code == 404


def test_hostile_values_in_api_writes_are_422(app, client, world):
    """Every API write operation with hostile values in each field of its body: 4xx, nothing written."""
    with app.app_context():
        token = gen_token("admin")
    headers = {"Authorization": f"Bearer {token}"}
    spec = client.get("/api/v1/openapi.json").get_json()
    failures = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "put", "patch"):
                continue
            url = re.sub(r"\{[^}]+\}", lambda m: str(world["account"] if "account" in m.group(0)
                                                      else world["contract"] if "contract" in m.group(0)
                                                      else world["subscriber"]), path)
            schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema") or {})
            ref = schema.get("$ref", "")
            props = spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            for name in props or ["_"]:
                for value in HOSTILE:
                    with app.app_context():
                        before = written()
                    r = client.open(url, method=method.upper(), json={name: value}, headers=headers)
                    with app.app_context():
                        after = written()
                    # (an operation without a body, such as "sync now", ignores one: it may write)
                    if r.status_code >= 500 or (props and value in NEVER_STORED and after != before):
                        failures.append(f"{method} {url} {name}={value[:20]!r}: {r.status_code}")
            for body in (b"", b"not json"):
                with app.app_context():
                    before = written()
                r = client.open(url, method=method.upper(), data=body,
                                headers={**headers, "Content-Type": "application/json"})
                with app.app_context():
                    after = written()
                if method == "patch" and (r.status_code != 422 or after != before):
                    failures.append(f"{method} {url} body={body!r}: {r.status_code}, written={after != before}")
                elif r.status_code >= 500:
                    failures.append(f"{method} {url} body={body!r}: {r.status_code}")
    assert not failures, "\n".join(failures)


def test_a_nul_in_an_htmx_form_keeps_the_form_and_says_why(app, client, world):
    """A NUL typed into an HTMX form: the form is not replaced, a toast names the field."""
    login(client, "/login", "prober", "password123")
    page = client.get(f"/contracts/{world['contract']}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(f"/contracts/{world['contract']}/payments", data={"amount": "10", "comment": "a\x00b"},
                    headers={"HX-Request": "true", "X-CSRFToken": token})
    assert r.status_code == 422 and r.headers["HX-Reswap"] == "none"
    assert "comment" in r.headers["HX-Trigger"] and "<html" not in r.get_data(as_text=True)
