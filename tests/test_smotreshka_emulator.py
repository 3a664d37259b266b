"""The «Смотрёшка» emulator on the shared base: failures by path, method or account, down and
up on the same port, and the protocol quirks the client relies on."""
from __future__ import annotations

import pytest
import requests


def create(emu, username, **extra):
    return requests.post(f"{emu.url}/v2/accounts", json={"username": username, "email": f"{username}@x.ru", **extra},
                         timeout=5)


def test_a_failure_can_hit_one_account_or_one_path_only(smotreshka_emulator):
    """Staff simulate trouble on one subscriber's account: the others and the catalog still answer."""
    a = create(smotreshka_emulator, "t_a").json()["id"]
    b = create(smotreshka_emulator, "t_b").json()["id"]
    smotreshka_emulator.fail("account busy", status=502, account=a)
    smotreshka_emulator.fail("catalog gone", status=503, path="/v2/subscriptions", times=1)
    assert requests.get(f"{smotreshka_emulator.url}/v2/accounts/{a}", timeout=5).status_code == 502
    assert requests.get(f"{smotreshka_emulator.url}/v2/accounts/{b}", timeout=5).status_code == 200
    assert requests.get(f"{smotreshka_emulator.url}/v2/subscriptions", timeout=5).json() == {"error": "catalog gone"}
    assert requests.get(f"{smotreshka_emulator.url}/v2/subscriptions", timeout=5).status_code == 200  # once only
    smotreshka_emulator.deny_source()
    assert requests.get(f"{smotreshka_emulator.url}/v2/accounts/{b}", timeout=5).status_code == 403
    smotreshka_emulator.heal()
    assert requests.get(f"{smotreshka_emulator.url}/v2/accounts/{a}", timeout=5).status_code == 200


def test_down_and_up_keep_the_port_and_the_accounts(smotreshka_emulator):
    """The platform goes away and comes back at the same address with its accounts."""
    url = smotreshka_emulator.url
    pid = create(smotreshka_emulator, "t_c", purchases=["101"]).json()["id"]
    smotreshka_emulator.down()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/subscriptions", timeout=5)
    smotreshka_emulator.up()
    assert smotreshka_emulator.url == url
    assert requests.get(f"{url}/v2/accounts/{pid}/subscriptions", timeout=5).json() == [{"id": "101"}]


def test_quirks_global_usernames_unknown_ids_archive_and_form_bodies(smotreshka_emulator):
    """The platform's oddities the client must cope with stay as the notes describe them."""
    smotreshka_emulator.foreign["t_other"] = "another provider"
    assert create(smotreshka_emulator, "t_other").json() == {"error": "Users exists and belongs to other provider"}
    first = create(smotreshka_emulator, "t_d").json()
    assert create(smotreshka_emulator, "t_d").json() == {"id": first["id"], "created": False}
    toggle = f"{smotreshka_emulator.url}/v2/accounts/{first['id']}/subscriptions"
    assert requests.post(toggle, data={"id": "999", "valid": "true"}, timeout=5).json() == {}
    assert requests.post(toggle, data={"id": "201", "valid": "true"}, timeout=5).json() == {"id": "201", "valid": True}
    account = f"{smotreshka_emulator.url}/v2/accounts/{first['id']}"
    assert requests.delete(account, timeout=5).json() == {"deleted": True}
    assert requests.get(toggle, timeout=5).status_code == 403
    assert create(smotreshka_emulator, "t_d").json()["created"] is False  # POSTed again: back in use
    assert requests.get(toggle, timeout=5).json() == [{"id": "201"}]
