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
