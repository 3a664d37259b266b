"""One purchase is one service and one charge: double clicks, parallel tabs, two upsale
transactions for one offer and parallel API calls, against the portal served over real HTTP
(threads, on whichever database the suite runs on)."""
from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AssignedService, LedgerEntry
from portal.platforms.reconcile import reconcile_account
from tests.builders import gen_token
from tests.smotreshka_fixtures import CALLBACK_LOGIN, CALLBACK_PASSWORD, connect, rest_of_month, tv_account

AUTH = (CALLBACK_LOGIN, CALLBACK_PASSWORD)


def copies(account_id: int, service_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(AssignedService).where(
        AssignedService.account_id == account_id, AssignedService.service_id == service_id,
        AssignedService.state != "ended"))


def charged(contract_id: int) -> Decimal:
    """Everything charged on the contract, net of refunds, as a positive amount."""
    db.session.rollback()
    total = db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.contract_id == contract_id, LedgerEntry.kind.in_(("charge", "refund"))))
    return -Decimal(total)


def parallel(n: int, call):
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: call(i), range(n)))


@pytest.fixture
def plain_http(app, monkeypatch):
    """The session cookie over plain HTTP: the live server here has no TLS in front."""
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)


def cabinet_session(live: str, login: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{live}/cabinet/login?lang=en", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    s.post(f"{live}/cabinet/login", data={"login": login, "password": "cabinet-pass-1", "csrf_token": csrf},
           timeout=10)
    home = s.get(f"{live}/cabinet/", timeout=10).text
    s.headers["X-CSRFToken"] = re.search(r'"X-CSRFToken": "([^"]+)"', home).group(1)
    return s


def test_ten_clicks_of_one_confirm_buy_kino_once(smotreshka, tv_catalog, live, plain_http):
    """A subscriber clicks "Confirm" for «Кино» ten times at once: one «Кино», one charge."""
    connect(smotreshka, self_service="on")
    a = tv_account(tv_catalog, ["101"], money="2000.00", cabinet_login="maria")
    aid, kino = a.id, tv_catalog["201"].id  # plain ids: the threads have no app context
    before = charged(a.contract_id)
    s = cabinet_session(live, "maria")
    data = {"action": "add", "service_id": str(kino)}
    preview = s.post(f"{live}/cabinet/tv/{aid}/preview", data=data, timeout=10).text
    nonce = re.search(r'name="nonce" value="([^"]+)"', preview).group(1)
    answers = parallel(10, lambda i: s.post(f"{live}/cabinet/tv/{aid}/confirm", data={**data, "nonce": nonce},
                                            headers={"HX-Request": "true"}, timeout=30).status_code)
    assert answers == [204] * 10  # every click is told it is done: the one purchase
    assert copies(aid, kino) == 1
    assert charged(a.contract_id) - before == rest_of_month("150.00")


def test_ten_tabs_buying_kino_at_once_get_one_and_nine_refusals(smotreshka, tv_catalog, live, plain_http):
    """Ten tabs, each with its own preview, confirm «Кино» at once: one buys it, the others are
    told the account has it already; one charge."""
    connect(smotreshka, self_service="on")
    a = tv_account(tv_catalog, ["101"], money="2000.00", cabinet_login="maria")
    aid, kino = a.id, tv_catalog["201"].id
    before = charged(a.contract_id)
    s = cabinet_session(live, "maria")
    data = {"action": "add", "service_id": str(kino)}
    nonces = [re.search(r'name="nonce" value="([^"]+)"', s.post(f"{live}/cabinet/tv/{aid}/preview?lang=en",
                                                                  data=data, timeout=10).text).group(1)
              for _ in range(10)]
    answers = parallel(10, lambda i: s.post(f"{live}/cabinet/tv/{aid}/confirm?lang=en",
                                            data={**data, "nonce": nonces[i]}, headers={"HX-Request": "true"},
                                            timeout=30))
    assert sorted(r.status_code for r in answers) == [204] + [409] * 9
    assert all("already" in r.text for r in answers if r.status_code == 409)
    assert copies(aid, kino) == 1
    assert charged(a.contract_id) - before == rest_of_month("150.00")


def test_parallel_api_assignments_of_one_service_assign_it_once(smotreshka, tv_catalog, live):
    """An operator's system posts the same service ten times at once: one 201, nine 422 that name
    service_id; a later repeat is refused the same way; one charge."""
    token = gen_token("manager")
    a = tv_account(tv_catalog, ["101"], money="2000.00")
    aid, kino = a.id, tv_catalog["201"].id
    before = charged(a.contract_id)
    headers = {"Authorization": f"Bearer {token}"}

    def post(_i):
        return requests.post(f"{live}/api/v1/accounts/{aid}/services", json={"service_id": kino},
                             headers=headers, timeout=30)

    answers = parallel(10, post)
    assert sorted(r.status_code for r in answers) == [201] + [422] * 9
    assert all("service_id" in r.json()["errors"] for r in answers if r.status_code == 422)
    again = post(0)
    assert again.status_code == 422 and "already" in again.json()["errors"]["service_id"]
    assert copies(aid, kino) == 1
    assert charged(a.contract_id) - before == rest_of_month("150.00")


def _buy(live, pid, username, offer, qs=None):
    """The platform's ensure + commit for one purchase, as its app makes them."""
    params = {"accountId": pid, "accountLogin": username, "newOfferId": offer,
              "qsTransactionId": qs or str(uuid.uuid4())}
    r = requests.post(f"{live}/upsale/v3/add-subscription/ensure", params=params, auth=AUTH, timeout=30)
    answer = r.json()
    if answer.get("result") != "operation_ensured":
        return r.status_code, answer
    params.update(billingTransactionId=answer["billingTransactionId"],
                  serviceStartTimestamp=datetime.now().astimezone().isoformat())
    r = requests.post(f"{live}/upsale/v3/add-subscription/commit", params=params, auth=AUTH, timeout=30)
    return r.status_code, r.json()


def test_two_and_then_ten_parallel_purchases_of_one_offer_in_the_app_buy_it_once(smotreshka, tv_catalog, live):
    """The app buys «Кино» twice in a row, then ten times at once, each with its own
    qsTransactionId: one «Кино», one charge; the repeats answer no_action_required."""
    connect(smotreshka)
    a = tv_account(tv_catalog, ["101"], money="3000.00")
    assert reconcile_account("smotreshka", a.id) == "ok"
    pid, username = smotreshka.by_username("t_" + a.login)["id"], "t_" + a.login
    aid, kino = a.id, tv_catalog["201"].id
    before = charged(a.contract_id)
    first, second = _buy(live, pid, username, "201"), _buy(live, pid, username, "201")
    assert (first[0], first[1]["result"]) == (200, "operation_commited")
    assert (second[0], second[1]["result"]) == (200, "no_action_required")
    answers = parallel(10, lambda i: _buy(live, pid, username, "201"))
    assert {(status, answer["result"]) for status, answer in answers} == {(200, "no_action_required")}
    assert copies(aid, kino) == 1
    assert charged(a.contract_id) - before == rest_of_month("150.00")


def test_ten_parallel_purchases_on_a_fresh_account_buy_it_once(smotreshka, tv_catalog, live):
    """Ten purchases of «Кино» at once, none before: exactly one is committed, the others answer
    no_action_required (at ensure or at commit); one charge, keyed by its transaction."""
    connect(smotreshka)
    a = tv_account(tv_catalog, ["101"], money="3000.00")
    assert reconcile_account("smotreshka", a.id) == "ok"
    pid, username = smotreshka.by_username("t_" + a.login)["id"], "t_" + a.login
    before = charged(a.contract_id)
    answers = parallel(10, lambda i: _buy(live, pid, username, "201"))
    results = sorted(answer["result"] for _status, answer in answers)
    assert {s for s, _a in answers} == {200}
    assert results == ["no_action_required"] * 9 + ["operation_commited"]
    assert copies(a.id, tv_catalog["201"].id) == 1
    assert charged(a.contract_id) - before == rest_of_month("150.00")
    db.session.rollback()
    keys = db.session.scalars(select(LedgerEntry.idempotency_key).where(
        LedgerEntry.contract_id == a.contract_id, LedgerEntry.idempotency_key.like("upsale:%"))).all()
    assert len(keys) == 1
