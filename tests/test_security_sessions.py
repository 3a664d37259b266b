"""Sessions that can be ended, login limits that do not lock people out, security headers."""
from __future__ import annotations

import re
import time

import pytest
import redis
from sqlalchemy import func, select

from portal import login_limits, security
from portal.extensions import db
from portal.models import AuditEntry, StaffUser
from portal.models.staff import LoginFailure
from tests.builders import gen_staff, gen_subscriber


def csrf(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def staff_login(client, login, password="password123", address="10.0.0.1"):
    return client.post("/login", data={"login": login, "password": password, "csrf_token": csrf(client)},
                       environ_base={"REMOTE_ADDR": address})


def cabinet_login(client, login, password, address="10.0.0.1"):
    return client.post("/cabinet/login", data={"login": login, "password": password,
                                               "csrf_token": csrf(client, "/cabinet/login")},
                       environ_base={"REMOTE_ADDR": address})


def copied(client, app):
    """A second browser holding a copy of ``client``'s session cookie."""
    other = app.test_client()
    cookie = client.get_cookie("session")
    other.set_cookie("session", cookie.value)
    return other


@pytest.fixture
def no_delay(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_DELAY_MAX", 0)


# -- sessions ------------------------------------------------------------------------------------

def test_a_copied_staff_cookie_stops_working_after_logout(app, client):
    """I log out: does a copy of my session cookie (another browser, a thief) stop working too?"""
    with app.app_context():
        gen_staff("anna")
    assert staff_login(client, "anna").status_code == 302
    thief = copied(client, app)
    assert thief.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf(client, "/login")})
    assert thief.get("/").status_code == 302  # to the login page
    assert client.get("/").status_code == 302


def test_a_copied_cabinet_cookie_stops_working_after_logout(app, client):
    """The same in the cabinet: after I log out, a copy of my cookie no longer opens it."""
    with app.app_context():
        gen_subscriber(cabinet_login="copycat", cabinet_password="copycat-pass-1")
    assert cabinet_login(client, "copycat", "copycat-pass-1").status_code == 302
    thief = copied(client, app)
    assert thief.get("/cabinet/").status_code == 200
    client.post("/cabinet/logout", data={"csrf_token": csrf(client, "/cabinet/password")})
    assert thief.get("/cabinet/").status_code == 302


def test_a_new_password_ends_the_old_sessions_and_an_admin_can_end_them(app, client):
    """An admin sets a new password for a staff member, or presses "End sessions": are that
    member's open sessions over, while the admin stays logged in?"""
    with app.app_context():
        gen_staff("boss")
        gen_staff("clerk", role="manager")
        clerk_id = db.session.scalar(select(StaffUser.id).filter_by(login="clerk"))
    clerk = app.test_client()
    assert staff_login(clerk, "clerk").status_code == 302
    assert staff_login(client, "boss").status_code == 302
    token = csrf(client, f"/staff/{clerk_id}")
    client.post(f"/staff/{clerk_id}/password", data={"password": "brand-new-pass", "csrf_token": token})
    assert clerk.get("/subscribers").status_code == 302
    assert staff_login(clerk, "clerk", "brand-new-pass").status_code == 302
    assert clerk.get("/subscribers").status_code == 200

    page = client.get(f"/staff/{clerk_id}").get_data(as_text=True)
    assert f"/staff/{clerk_id}/sessions" in page  # the button on the staff member's page
    r = client.post(f"/staff/{clerk_id}/sessions", data={"csrf_token": token})
    assert r.status_code == 303
    assert clerk.get("/subscribers").status_code == 302
    assert client.get("/subscribers").status_code == 200  # the admin is still in
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .filter_by(action="staff.end_sessions", object_id=clerk_id)) == 1


def test_a_viewer_cannot_end_anyones_sessions(app, client):
    """Only admins may end sessions of others."""
    with app.app_context():
        gen_staff("watcher", role="viewer")
        target = gen_staff("target").id
    staff_login(client, "watcher")
    assert client.post(f"/staff/{target}/sessions", data={"csrf_token": csrf(client, "/login")}).status_code == 403


def test_idle_and_old_sessions_end_for_staff_and_cabinet(app, client):
    """I left the browser open overnight (12 h idle), or the login is older than the lifetime:
    am I asked to log in again, in the admin and in the cabinet?"""
    with app.app_context():
        gen_staff("night")
        gen_subscriber(cabinet_login="sleepy", cabinet_password="sleepy-pass-1")
    staff_login(client, "night")
    cabinet_login(client, "sleepy", "sleepy-pass-1")
    assert client.get("/").status_code == 200 and client.get("/cabinet/").status_code == 200
    idle, lifetime = app.config["SESSION_IDLE_TIMEOUT"], app.config["SESSION_MAX_LIFETIME"]
    now = int(time.time())
    with client.session_transaction() as s:
        s[security.TIMES_KEY] = {"staff": [now - idle - 120, now - idle - 60], "cabinet": [now - 60, now - 30]}
    assert client.get("/").status_code == 302
    assert client.get("/cabinet/").status_code == 200  # only the idle area ended
    with client.session_transaction() as s:
        s[security.TIMES_KEY] = {"cabinet": [now - lifetime - 1, now]}  # busy, but logged in too long ago
    assert client.get("/cabinet/").status_code == 302


# -- login limits --------------------------------------------------------------------------------

def test_a_stranger_cannot_lock_the_admin_out(app, client, no_delay):
    """Someone types wrong passwords for "admin" from their address: can the real admin still log
    in from theirs, while the stranger's address is refused?"""
    with app.app_context():
        gen_staff("admin")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert staff_login(client, "admin", "guess", address="203.0.113.9").status_code == 200
    refused = staff_login(client, "admin", "password123", address="203.0.113.9")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert staff_login(app.test_client(), "admin", address="198.51.100.7").status_code == 302


def test_a_cabinet_login_is_not_locked_by_a_stranger_and_one_address_cannot_spray(app, client, no_delay):
    """The same for the cabinet; and an address that tries many logins is stopped."""
    with app.app_context():
        gen_subscriber(cabinet_login="olga", cabinet_password="olga-pass-12")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        cabinet_login(client, "olga", "nope", address="203.0.113.5")
    assert cabinet_login(client, "olga", "olga-pass-12", address="203.0.113.5").status_code == 429
    assert cabinet_login(app.test_client(), "olga", "olga-pass-12", address="192.0.2.44").status_code == 302
    sprayer = app.test_client()
    for i in range(app.config["LOGIN_MAX_ADDRESS_FAILURES"]):
        cabinet_login(sprayer, f"user{i}", "123456", address="203.0.113.66")
    assert cabinet_login(sprayer, "olga", "olga-pass-12", address="203.0.113.66").status_code == 429


def test_failures_on_one_login_only_slow_it_down():
    """Many failures on one login from many addresses: only a growing, bounded delay."""
    delays = [login_limits.delay_for(n, 5, 5.0) for n in range(0, 12)]
    assert delays[:5] == [0.0] * 5
    assert delays[5] < delays[6] < delays[7] and max(delays) == 5.0


def test_the_limits_hold_while_redis_is_down(app, client, no_delay, monkeypatch):
    """Redis is down: are failures still counted (in the database) and the address refused?"""
    with app.app_context():
        gen_staff("keeper")

    class Down:
        def __getattr__(self, name):
            raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(login_limits, "get_redis", lambda: Down())
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert staff_login(client, "keeper", "wrong", address="203.0.113.20").status_code == 200
    assert staff_login(client, "keeper", address="203.0.113.20").status_code == 429
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == app.config["LOGIN_MAX_FAILURES"]
    assert staff_login(app.test_client(), "keeper", address="198.51.100.20").status_code == 302
    with app.app_context():  # the right password forgave this login's failures
        assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == 0


def test_the_limits_see_the_real_client_behind_a_trusted_proxy(client, no_delay):
    """Behind our nginx (TRUSTED_PROXIES), failures count per real client, not per proxy."""
    from portal import create_app

    proxied = create_app({"TESTING": True, "TRUSTED_PROXIES": "127.0.0.1"})
    with proxied.app_context():
        gen_staff("proxied")
    proxied.config["LOGIN_DELAY_MAX"] = 0
    c = proxied.test_client()

    def attempt(password, real):
        return c.post("/login", data={"login": "proxied", "password": password, "csrf_token": csrf(c)},
                      headers={"X-Forwarded-For": real}, environ_base={"REMOTE_ADDR": "127.0.0.1"})

    for _ in range(proxied.config["LOGIN_MAX_FAILURES"]):
        attempt("wrong", "203.0.113.77")
    assert attempt("password123", "203.0.113.77").status_code == 429
    assert attempt("password123", "198.51.100.78").status_code == 302


# -- headers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/cabinet/login", "/api/v1/openapi.json", "/no-such-page"])
def test_every_answer_forbids_framing_and_foreign_scripts(client, path):
    """Can another site frame our pages, or a script from elsewhere run in them?"""
    r = client.get(path)
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"


def test_an_unknown_login_costs_the_same_password_check_as_a_known_one(app, client, no_delay, monkeypatch):
    """Can a stranger tell which logins exist by how long the answer takes? Every attempt,
    known login or not, staff or cabinet, checks exactly one password hash of the same kind."""
    import portal.models.staff as staff_model

    with app.app_context():
        gen_staff("known")
        gen_staff("off").is_enabled = False
        db.session.commit()
        gen_subscriber(cabinet_login="member", cabinet_password="member-pass-1")
    checked = []
    real = staff_model.check_password_hash
    monkeypatch.setattr(staff_model, "check_password_hash",
                        lambda h, p: checked.append(h.split("$")[0]) or real(h, p))
    for name in ("known", "off", "nobody"):
        staff_login(client, name, "wrong-password")
    for name in ("member", "nobody"):
        cabinet_login(client, name, "wrong-password")
    with app.app_context():
        method = db.session.scalar(select(StaffUser.password_hash).filter_by(login="known")).split("$")[0]
    assert checked == [method] * 5
