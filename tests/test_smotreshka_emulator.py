"""The «Смотрёшка» emulator on the shared base: failures by path, method or account, down and
up on the same port, and the protocol quirks the client relies on."""
from __future__ import annotations

import pytest
import requests

from tests.smotreshka_fixtures import emulator  # noqa: F401  (fixture)


def create(emu, username, **extra):
    return requests.post(f"{emu.url}/v2/accounts", json={"username": username, "email": f"{username}@x.ru", **extra},
                         timeout=5)


def test_a_failure_can_hit_one_account_or_one_path_only(emulator):
    """Staff simulate trouble on one subscriber's account: the others and the catalog still answer."""
    a = create(emulator, "t_a").json()["id"]
    b = create(emulator, "t_b").json()["id"]
    emulator.fail("account busy", status=502, account=a)
    emulator.fail("catalog gone", status=503, path="/v2/subscriptions", times=1)
    assert requests.get(f"{emulator.url}/v2/accounts/{a}", timeout=5).status_code == 502
    assert requests.get(f"{emulator.url}/v2/accounts/{b}", timeout=5).status_code == 200
    assert requests.get(f"{emulator.url}/v2/subscriptions", timeout=5).json() == {"error": "catalog gone"}
    assert requests.get(f"{emulator.url}/v2/subscriptions", timeout=5).status_code == 200  # once only
    emulator.deny_source()
    assert requests.get(f"{emulator.url}/v2/accounts/{b}", timeout=5).status_code == 403
    emulator.heal()
    assert requests.get(f"{emulator.url}/v2/accounts/{a}", timeout=5).status_code == 200


def test_down_and_up_keep_the_port_and_the_accounts(emulator):
    """The platform goes away and comes back at the same address with its accounts."""
    url = emulator.url
    pid = create(emulator, "t_c", purchases=["101"]).json()["id"]
    emulator.down()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/subscriptions", timeout=5)
    emulator.up()
    assert emulator.url == url
    assert requests.get(f"{url}/v2/accounts/{pid}/subscriptions", timeout=5).json() == [{"id": "101"}]


def test_quirks_global_usernames_unknown_ids_archive_and_form_bodies(emulator):
    """The platform's oddities the client must cope with stay as the notes describe them."""
    emulator.foreign["t_other"] = "another provider"
    assert create(emulator, "t_other").json() == {"error": "Users exists and belongs to other provider"}
    first = create(emulator, "t_d").json()
    assert create(emulator, "t_d").json() == {"id": first["id"], "created": False}
    toggle = f"{emulator.url}/v2/accounts/{first['id']}/subscriptions"
    assert requests.post(toggle, data={"id": "999", "valid": "true"}, timeout=5).json() == {}
    assert requests.post(toggle, data={"id": "201", "valid": "true"}, timeout=5).json() == {"id": "201", "valid": True}
    assert requests.delete(f"{emulator.url}/v2/accounts/{first['id']}", timeout=5).json() == {"deleted": True}
    assert requests.get(toggle, timeout=5).status_code == 403
    assert create(emulator, "t_d").json()["created"] is False  # POSTed again: back in use
    assert requests.get(toggle, timeout=5).json() == [{"id": "201"}]
