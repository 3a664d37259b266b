"""«Интерсвязь» in the admin (Intercom page, lookup, connection check, the account's access
panel) and in the cabinet (each flat's access and why it is limited)."""
from __future__ import annotations

import re

from sqlalchemy import select

from portal.billing import accounts as acc
from portal.extensions import db
from portal.models import Account, AuditEntry, Subscriber
from portal.platforms.connections import save_connection
from portal.platforms.reconcile import reconcile_account
from portal.queue import get_queue
from tests.helpers import CABINET_PASSWORD as PASSWORD
from tests.helpers import HX, cabinet_login, english
from tests.helpers import staff_in_english as staff
from tests.intercom_fixtures import settled
from tests.platform_fixtures import wait_for


def csrf(client) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def post(client, path, data=None):
    return client.post(path, data={"csrf_token": csrf(client), **(data or {})}, headers=HX)


def poll(client, html: str) -> str:
    """Follow a job row's hx-get until it stops polling; the final fragment."""
    def step():
        nonlocal html
        m = re.search(r'hx-get="([^"]+)"\s+hx-trigger="load', html)
        if not m:
            return html
        html = client.get(m.group(1).replace("&amp;", "&"), headers=HX).get_data(as_text=True)
        return None

    return wait_for(step, timeout=30, what="the job row to finish")


def test_the_intercom_page_lists_one_profile_with_both_flats_and_their_access(intercom, client):
    """Two flats of one client, one blocked: does the Intercom page show one profile with two
    addresses, one full and one limited, and no drift?"""
    contract = intercom.contract()
    one = intercom.flat(contract=contract, login="family", flat="1")
    two = intercom.flat(contract=contract, login="family", flat="2")
    acc.block(db.session.get(Account, two.id), "manager", actor="test")
    db.session.commit()
    for a in (one, two):
        assert reconcile_account("intercom", a.id) == "ok"
    staff(client, "viewer")
    html = client.get("/intercom").get_data(as_text=True)
    rows = re.findall(r'<tr data-profile="family" data-account="(\d+)" data-drift="([^"]*)">(.*?)</tr>', html, re.S)
    assert [(int(i), d) for i, d, _ in rows] == [(one.id, ""), (two.id, "")]
    assert "full access" in rows[0][2] and "limited access" in rows[1][2] and "blocked by a manager" in rows[1][2]
    assert "Иванов Иван Иванович" in html
    assert "Check all profiles now" not in html  # a viewer only reads


def test_the_intercom_page_shows_drift_after_the_platform_changed_behind_our_back(intercom, client):
    """The platform lost a flat and gave a blocked one full access: after the drift check the
    page marks both, before any repair."""
    from portal.platforms.intercom import console

    contract = intercom.contract()
    one = intercom.flat(contract=contract, login="drift", flat="1")
    two = intercom.flat(contract=contract, login="drift", flat="2")
    acc.block(db.session.get(Account, one.id), "manager", actor="test")
    db.session.commit()
    for a in (one, two):
        reconcile_account("intercom", a.id)
    addresses = intercom.profile("drift")["addresses"]
    addresses[str(one.id)]["access"] = {k: True for k in addresses[str(one.id)]["access"]}
    del addresses[str(two.id)]
    console.check_profiles()
    staff(client)
    html = client.get("/intercom?q=drift").get_data(as_text=True)
    drift = dict((int(i), d) for i, d in re.findall(r'data-account="(\d+)" data-drift="([^"]*)"', html))
    assert drift == {one.id: "access", two.id: "missing"}


def test_staff_look_a_login_up_from_the_account_form_before_creating_the_account(worker, client):
    """The manager types the isvyaz_login in the new-account form and looks it up: the job's
    answer names the profile's owner and lists its current flats; an unknown login says a
    profile will be created; an empty one asks for the login and starts no job."""
    a = worker.flat(login="known", house="ул. Мира, 7", flat="3")
    settled(a)
    staff(client, "manager")
    html = post(client, "/intercom/lookup", {"extra.isvyaz_login": "known", "login": ""}).get_data(as_text=True)
    assert 'data-kind="lookup"' in html and "<html" not in html
    html = poll(client, html)
    assert 'data-state="finished"' in html and "Иванов Иван Иванович" in html
    assert "ул. Мира, 7" in html and a.login in html and "full access" in html

    html = poll(client, post(client, "/intercom/lookup", {"login": "nobody.here"}).get_data(as_text=True))
    assert "no profile" in html and "will be created" in html

    before = len(get_queue("high").job_ids)
    r = post(client, "/intercom/lookup", {"login": "  "})
    assert r.status_code == 422 and "Enter the «Интерсвязь» login first." in r.get_data(as_text=True)
    assert len(get_queue("high").job_ids) == before
    assert db.session.scalar(select(AuditEntry).filter_by(action="intercom.lookup", actor="staff:manager1"))


def test_a_viewer_cannot_start_a_lookup(intercom, client):
    """A read-only viewer gets 403 for a lookup, and no job is queued."""
    staff(client, "viewer")
    assert post(client, "/intercom/lookup", {"login": "known"}).status_code == 403
    assert get_queue("high").job_ids == []


def test_the_connection_check_reports_reachability_and_the_key(worker, client):
    """Check the connection: accepted with the right key; refused with a wrong one;
    unreachable when the platform is down."""
    staff(client)
    html = poll(client, post(client, "/intercom/check").get_data(as_text=True))
    assert "reachable and accepts our API key" in html

    save_connection("intercom", url=worker.emulator.url, password="wrong-key", actor="test")
    db.session.commit()
    html = poll(client, post(client, "/intercom/check").get_data(as_text=True))
    assert "refuses our API key" in html and "invalid API key" in html and "wrong-key" not in html

    worker.emulator.down()
    html = poll(client, post(client, "/intercom/check").get_data(as_text=True))
    assert "cannot be reached" in html
    assert db.session.scalar(select(AuditEntry).filter_by(action="intercom.check", actor="staff:admin1"))


def test_the_account_panel_shows_what_billing_wants_and_what_the_platform_has(intercom, client):
    """A flat blocked while the platform is down: the account's intercom panel says billing
    wants limited, the platform still has full, and shows the platform's error."""
    a = intercom.flat(login="panel")
    reconcile_account("intercom", a.id)
    intercom.emulator.down()
    acc.block(db.session.get(Account, a.id), "manager", actor="test")
    db.session.commit()
    assert reconcile_account("intercom", a.id) == "retry"
    staff(client)
    html = client.get(f"/accounts/{a.id}/intercom", headers=HX).get_data(as_text=True)
    assert 'data-want="limited" data-have="full"' in html and "<html" not in html
    assert "ConnectionError" in html or "Connection refused" in html
    assert "blocked by a manager" in html


def test_the_account_panel_is_empty_for_an_account_without_intercom(intercom, client):
    """An internet-only account shows no intercom panel."""
    from tests.builders import gen_account

    a = gen_account()
    staff(client)
    assert client.get(f"/accounts/{a.id}/intercom").get_data(as_text=True).strip() == ""


def test_the_subscriber_sees_each_flats_access_and_why_it_is_limited(intercom, client):
    """In the cabinet: one flat with full access, one blocked by balance (with the amount
    that lifts it); a flat of another subscriber is not shown."""
    contract = intercom.contract(money="0")
    s = db.session.get(Subscriber, contract.subscriber_id)
    s.cabinet_login = "flatowner"
    s.set_cabinet_password(PASSWORD)
    db.session.commit()
    one = intercom.flat(contract=contract, login="owner", flat="1", house="ул. Ленина, 5")
    other = intercom.flat(login="stranger", flat="99", house="ул. Чужая, 1")
    cabinet_login(client, "flatowner")
    english(client)
    html = client.get("/cabinet/").get_data(as_text=True)
    assert 'id="section-intercom"' in html
    flat = re.search(rf'id="intercom-{one.id}" data-level="(\w+)"(.*?)</div>\s*</div>', html, re.S)
    assert flat.group(1) == "limited"
    assert "Blocked by balance:" in flat.group(2) and "top up at least" in flat.group(2)
    assert "door still opens with your key" in html
    assert f'intercom-{other.id}"' not in html and "ул. Чужая" not in html
