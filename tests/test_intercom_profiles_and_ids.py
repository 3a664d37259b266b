"""«Интерсвязь» (issue 14): account ids answered as numbers or strings, the subscriber card
reaching the profile, a linked profile left with no flat, the ``isvyaz_login`` field on a fresh
install, and API v1's extra fields. Real worker, real HTTP to the emulator."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.billing import directory
from portal.extensions import db
from portal.models import Account, ExtraFieldDefinition, IntercomProfile, Subscriber
from portal.platforms.connections import save_connection
from portal.platforms.intercom import console
from portal.platforms.reconcile import reconcile_account
from tests.builders import gen_token
from tests.helpers import staff_in_english as staff
from tests.intercom_fixtures import TOKEN, settled
from tests.platform_fixtures import wait_for


@pytest.mark.parametrize("as_strings", [False, True], ids=["numbers", "strings"])
def test_in_sync_flats_show_no_drift_whatever_the_id_type(intercom, client, as_strings):
    """The platform answers account ids as numbers or as strings: each flat is shown once,
    without drift, the lookup names our account, and the nightly check queues nothing."""
    intercom.emulator.ids_as_strings = as_strings
    contract = intercom.contract()
    one = intercom.flat(contract=contract, login="family", flat="1")
    two = intercom.flat(contract=contract, login="family", flat="2")
    for a in (one, two):
        assert reconcile_account("intercom", a.id) == "ok"
    assert console.check_profiles() == {"profiles": 1, "missing": 0, "drifted_accounts": 0}
    staff(client, "viewer")
    html = client.get("/intercom").get_data(as_text=True)
    rows = re.findall(r'<tr data-profile="family" data-account="(\d+)" data-drift="([^"]*)">', html)
    assert sorted((int(i), d) for i, d in rows) == [(one.id, ""), (two.id, "")]
    found = console.lookup("family")
    assert sorted(a["account_login"] for a in found["addresses"]) == sorted([one.login, two.login])
    # the sync compares the same way: a second pass writes nothing
    puts = sum(1 for m, _p, _s in intercom.emulator.requests if m == "PUT")
    assert reconcile_account("intercom", one.id) == "ok"
    assert sum(1 for m, _p, _s in intercom.emulator.requests if m == "PUT") == puts


@pytest.mark.parametrize("linked", [False, True], ids=["created", "linked"])
def test_a_card_change_updates_the_profile(worker, linked):
    """A new name and phone on the subscriber card reach the profile (ours or linked), and a
    name changed on the platform is put back after the nightly check."""
    if linked:
        worker.emulator.add_profile("card", "Старое Имя", ["+7 900 000-00-00"])
    contract = worker.contract(full_name="Смирнов Пётр Ильич", phones=("+7 900 111-11-11",))
    a = worker.flat(contract=contract, login="card")
    settled(a)
    assert worker.profile("card")["full_name"] == "Смирнов Пётр Ильич"
    subscriber = db.session.get(Subscriber, contract.subscriber_id)
    directory.save_subscriber({"full_name": "Смирнова Анна Ильинична", "phones": ["+7 900 222-22-22"]},
                              actor="test", subscriber=subscriber)
    db.session.commit()
    settled(a)
    p = worker.profile("card")
    assert (p["full_name"], p["phones"]) == ("Смирнова Анна Ильинична", ["+7 900 222-22-22"])
    assert len(p["addresses"]) == 1
    # the platform's side changed behind our back: the nightly check queues a sync that puts
    # the card back
    worker.emulator.profiles["card"]["full_name"] = "Кто-то другой"
    assert console.check_profiles()["drifted_accounts"] == 1
    settled(a)
    wait_for(lambda: worker.profile("card")["full_name"] == "Смирнова Анна Ильинична", what="the card back")


def test_with_push_off_a_linked_profile_keeps_its_card_and_the_page_says_so(worker, client):
    """``push_linked_profiles`` off: a linked profile keeps the platform's name; the page shows
    the card's value as a difference that stays."""
    save_connection("intercom", url=worker.emulator.url, options={"push_linked_profiles": "0"}, actor="test")
    db.session.commit()
    worker.emulator.add_profile("kept", "Имя на платформе", [])
    a = worker.flat(login="kept")
    settled(a)
    assert worker.profile("kept")["full_name"] == "Имя на платформе"
    console.check_profiles()
    staff(client, "viewer")
    html = client.get("/intercom").get_data(as_text=True)
    assert 'data-card-drift="kept"' in html and "Иванов Иван Иванович" in html


@pytest.mark.parametrize("keep", [False, True], ids=["deleted", "kept"])
def test_a_linked_profile_left_with_no_flat(worker, keep):
    """The last flat on a linked profile is disabled: the profile goes, as the documentation
    says; with ``keep_linked_profiles`` on it stays (empty)."""
    if keep:
        save_connection("intercom", url=worker.emulator.url, options={"keep_linked_profiles": "1"}, actor="test")
        db.session.commit()
    worker.emulator.add_profile("lonely", "Одинокий профиль", [])
    a = worker.flat(login="lonely")
    settled(a)
    assert list(worker.profile("lonely")["addresses"]) == [str(a.id)]
    acc.disable(db.session.get(Account, a.id), actor="test")
    db.session.commit()
    settled(a)
    if keep:
        assert worker.profile("lonely")["addresses"] == {}
    else:
        assert worker.profile("lonely") is None
        assert db.session.scalar(select(IntercomProfile).filter_by(login="lonely")) is None


def test_saving_the_intercom_connection_creates_isvyaz_login_once(ctx, intercom_emulator):
    """A fresh install: saving the intercom connection creates the account field
    ``isvyaz_login``; saving it again adds no second one."""
    assert db.session.scalar(select(ExtraFieldDefinition).filter_by(name="isvyaz_login")) is None
    save_connection("intercom", url=intercom_emulator.url, password=TOKEN, actor="test")
    db.session.commit()
    save_connection("intercom", url=intercom_emulator.url, options={"limited_open_code": "1"}, actor="test")
    db.session.commit()
    fields = db.session.scalars(select(ExtraFieldDefinition).filter_by(name="isvyaz_login")).all()
    assert len(fields) == 1 and fields[0].title == "Логин «Интерсвязь»" and fields[0].type == "string"


def _h(token):
    return {"Authorization": f"Bearer {token}"}


def test_api_lists_creates_and_edits_extra_fields(client, ctx):
    """A viewer token lists and reads extra fields but cannot write; an admin token creates and
    edits one; a bad name is refused naming the field, and nothing is written."""
    viewer, admin = gen_token("viewer"), gen_token("admin")
    r = client.post("/api/v1/extra-fields", json={"name": "isvyaz_login", "title": "Логин"}, headers=_h(viewer))
    assert r.status_code == 403
    r = client.post("/api/v1/extra-fields", json={"name": "Bad Name", "title": "x"}, headers=_h(admin))
    assert r.status_code == 422 and "name" in r.get_json()["errors"]
    assert db.session.scalar(select(func.count()).select_from(ExtraFieldDefinition)) == 0
    r = client.post("/api/v1/extra-fields", json={"name": "isvyaz_login", "title": "Логин «Интерсвязь»",
                                                  "pattern": "[A-Za-z0-9_.-]{3,64}"}, headers=_h(admin))
    assert r.status_code == 201
    fid = r.get_json()["id"]
    r = client.post("/api/v1/extra-fields", json={"name": "isvyaz_login", "title": "again"}, headers=_h(admin))
    assert r.status_code in (409, 422)
    assert db.session.scalar(select(func.count()).select_from(ExtraFieldDefinition)) == 1
    r = client.patch(f"/api/v1/extra-fields/{fid}", json={"title": "Логин домофона"}, headers=_h(admin))
    assert r.status_code == 200 and r.get_json()["title"] == "Логин домофона"
    assert client.patch(f"/api/v1/extra-fields/{fid}", json={"title": "x"}, headers=_h(viewer)).status_code == 403
    items = client.get("/api/v1/extra-fields", headers=_h(viewer)).get_json()
    assert [i["name"] for i in items["items"]] == ["isvyaz_login"]
    assert client.get(f"/api/v1/extra-fields/{fid}", headers=_h(viewer)).get_json()["title"] == "Логин домофона"
