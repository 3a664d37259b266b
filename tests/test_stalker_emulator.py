"""The Stalker emulator on the shared emulator base: Stalker's own answers (200 + ERROR,
401 with a JSON body, plain-text 404) and the controls tests rely on (failures narrowed to a
resource, an HTTP status from a proxy, latency, down and up on the same port)."""
from __future__ import annotations

import time

import pytest
import requests

from portal.platforms.stalker.emulator import StalkerEmulator

AUTH = ("api", "api-secret")


@pytest.fixture
def emu():
    e = StalkerEmulator(*("127.0.0.1", 0), *AUTH).seed_demo().start()
    yield e
    e.stop()


def test_stalkers_own_answers(emu):
    """Does a refusal come as HTTP 200 with status ERROR, bad credentials as a 401 with JSON,
    and the API switched off as a plain-text 404?"""
    r = requests.post(emu.url + "accounts", data={"login": "tv_petrov"}, auth=AUTH)
    assert r.status_code == 200 and r.json() == {"status": "ERROR", "results": None, "error": "Login already in use"}
    r = requests.get(emu.url + "accounts/501", auth=("api", "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "401 Unauthorized request"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    emu.api_enabled = False
    r = requests.get(emu.url + "accounts/501", auth=AUTH)
    assert (r.status_code, r.headers["Content-Type"], r.text) == (404, "text/plain", "API not enabled")
    emu.heal()
    assert requests.get(emu.url + "accounts/501", auth=AUTH).json()["results"][0]["login"] == "tv_petrov"


def test_failures_latency_and_an_outage(emu):
    """A failure for one resource leaves the others alone and counts down; a proxy's 502
    answers that status; latency delays every answer; down/up keeps the port."""
    emu.fail("Database error", resource="itv", times=1)
    assert requests.get(emu.url + "tariffs", auth=AUTH).json()["status"] == "OK"
    assert requests.get(emu.url + "itv", auth=AUTH).json()["error"] == "Database error"
    assert requests.get(emu.url + "itv", auth=AUTH).json()["status"] == "OK"
    emu.fail("Bad gateway", status=502, method="PUT")
    assert requests.get(emu.url + "accounts/501", auth=AUTH).status_code == 200
    r = requests.put(emu.url + "accounts/501", data={"status": "0"}, auth=AUTH)
    assert r.status_code == 502 and r.json()["error"] == "Bad gateway"
    assert emu.find(login="tv_petrov")["status"] == 1  # nothing applied
    emu.heal()
    emu.latency = 0.3
    started = time.monotonic()
    requests.get(emu.url + "tariffs", auth=AUTH)
    assert time.monotonic() - started >= 0.3
    emu.heal()
    port = emu.port
    emu.down()
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.url + "tariffs", auth=AUTH, timeout=2)
    emu.up()
    assert emu.port == port and requests.get(emu.url + "tariffs", auth=AUTH).json()["status"] == "OK"


def test_the_facts_checked_on_the_real_middleware(emu):
    """The behaviours issue 13 found on stalker_portal 4.9.35: a PUT with login and password
    onto a MAC-only user is accepted and it then logs in by login; an empty stb_mac clears the
    MAC; no GET returns a password; users/<login> answers one object and takes PUT/DELETE by
    login; an unknown tariff_plan silently gives the default plan; Stalker's error texts."""
    emu.add_user("", "777", "9002", 1, "00:1A:79:00:07:77")
    r = requests.put(emu.url + "accounts/00:1A:79:00:07:77", data={"login": "kitchen", "password": "k-pass"},
                     auth=AUTH).json()
    assert r == {"status": "OK", "results": True}
    assert emu.check_password("kitchen", "k-pass")
    user = requests.get(emu.url + "users/kitchen", auth=AUTH).json()["results"]
    assert isinstance(user, dict) and user["account_number"] == "777" and "password" not in user
    assert all("password" not in row for row in requests.get(emu.url + "accounts", auth=AUTH).json()["results"])
    assert requests.put(emu.url + "users/kitchen", data={"stb_mac": ""}, auth=AUTH).json()["results"] is True
    assert emu.find(login="kitchen")["mac"] == ""
    requests.put(emu.url + "users/kitchen", data={"tariff_plan": "no-such-plan"}, auth=AUTH)
    assert requests.get(emu.url + "users/kitchen", auth=AUTH).json()["results"]["tariff_plan"] == "9001"  # default
    assert requests.get(emu.url + "users/nobody", auth=AUTH).json()["error"] == "Account not found"
    r = requests.post(emu.url + "accounts", data={"login": "x1", "stb_mac": "00:1A:79:00:00:01"}, auth=AUTH).json()
    assert r["error"] == "MAC address already in use"
    r = requests.put(emu.url + "users/kitchen", data={"login": "tv_petrov"}, auth=AUTH).json()
    assert r["error"] == "Login already in use"
    assert requests.delete(emu.url + "users/kitchen", auth=AUTH).json()["results"] is True
    assert emu.find(login="kitchen") is None and emu.find(login="tv_petrov") is not None


def test_packages_not_optional_in_the_plan_answer_false(emu):
    """account_subscription toggles only the plan's optional packages and answers results:false
    when it changed nothing (a mandatory package, or a package already on)."""
    sub = lambda method, **data: requests.request(method, emu.url + "account_subscription/501",  # noqa: E731
                                                 data=data, auth=AUTH).json()
    # tv_petrov is on 9001, whose only package (pkg_base) is mandatory
    assert sub("PUT", **{"subscribed[]": "pkg_base"}) == {"status": "OK", "results": False}
    assert sub("POST", **{"subscribed[]": "pkg_sport"})["results"] is False  # not in 9001 at all
    requests.put(emu.url + "accounts/501", data={"tariff_plan": "9002"}, auth=AUTH)
    assert sub("PUT", **{"subscribed[]": "pkg_sport"})["results"] is True
    assert sub("PUT", **{"subscribed[]": "pkg_sport"})["results"] is False  # nothing changed
    assert emu.find(login="tv_petrov")["subscribed"] == {emu.packages[2]["id"]}
    assert sub("PUT")["error"] == "HTTP PUT data is empty"


def test_the_access_log_keeps_request_bodies_in_clear_text(emu):
    """Like Stalker's api_access.log (on by default): is every request's body logged, the
    password in clear text, while the test record masks it?"""
    requests.post(emu.url + "accounts", data={"login": "ivan", "password": "Secret-1", "account_number": "9"},
                  auth=AUTH)
    requests.put(emu.url + "users/ivan", data={"status": "0"}, auth=AUTH)
    assert any("password=Secret-1" in line for line in emu.access_log)
    assert emu.password_pushes() == 1 and emu.password_pushes("ivan") == 1
    assert emu.requests[0]["fields"]["password"] == "***"
