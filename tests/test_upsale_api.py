"""The upsale endpoints under load and under attack, over real HTTP: parallel ensures with one
transaction id, large bodies, guessed passwords, forged X-Forwarded-For."""
from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal import create_app
from portal.api import upsale as upsale_api
from portal.api.throttle import FailureLimit
from portal.extensions import db
from portal.models import SmotreshkaCall, SmotreshkaUpsale
from tests.platform_fixtures import redis_down
from tests.smotreshka_fixtures import AUTH, CALLBACK_LOGIN, connect, linked

MB = 1024 * 1024
WRONG = (CALLBACK_LOGIN, "guess-1")


@pytest.fixture(autouse=True)
def _fresh_failure_counts(monkeypatch):
    """Each test starts with no refused credentials counted in this process either."""
    monkeypatch.setattr(upsale_api, "failures", FailureLimit("upsale"))
    monkeypatch.setattr(upsale_api, "refusals", FailureLimit("upsale-refused", "CALLBACK_MAX_REFUSED_RECORDS"))


@contextmanager
def serving(**config):
    """Another app with ``config`` (e.g. TRUSTED_PROXIES) over real HTTP, on the same database."""
    app = create_app({"TESTING": True, **config})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        with app.app_context():
            db.engine.dispose()


def post(portal, op="add-subscription", step="ensure", auth=AUTH, source=None, data=None, **params):
    headers = {"X-Forwarded-For": source} if source else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    kwargs = {"data": data} if data is not None else {"json": {"clientIp": "1.2.3.4"}}
    return requests.post(f"{portal}/upsale/v3/{op}/{step}", params=params, auth=auth, headers=headers,
                         timeout=30, **kwargs)


def recorded() -> list[SmotreshkaCall]:
    db.session.rollback()
    return db.session.scalars(select(SmotreshkaCall).order_by(SmotreshkaCall.id)).all()


def stored_size(call: SmotreshkaCall) -> int:
    return sum(len(json.dumps(v, ensure_ascii=False)) for v in (call.query, call.body, call.answer))


def test_thirty_parallel_ensures_with_one_transaction_id_make_one_transaction(smotreshka, tv_catalog, live):
    """The platform's retries of one ensure arrive 30 at once: does every caller get the same
    answer, is there one transaction, and is every call on record, with no 500?"""
    account, pid = linked(smotreshka, tv_catalog)
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201", "qsTransactionId": "qs-30"}
    start = threading.Barrier(30)

    def ensure(_):
        start.wait()
        r = post(live, **q)
        return r.status_code, r.json()

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(ensure, range(30)))
    assert [s for s, _ in answers] == [200] * 30
    db.session.rollback()
    [txn] = db.session.scalars(select(SmotreshkaUpsale)).all()
    assert all(a == answers[0][1] for _, a in answers)
    assert answers[0][1]["result"] == "operation_ensured"
    assert txn.id == answers[0][1]["billingTransactionId"] and txn.qs_transaction_id == "qs-30"
    calls = recorded()
    assert len(calls) == 30 and {(c.status, c.transaction_id) for c in calls} == {(200, txn.id)}


def test_a_five_megabyte_body_without_credentials_stores_nothing_large(smotreshka, tv_catalog, live):
    """Someone posts 5 MB bodies (sized, and chunked so the size is not known up front) and a
    60 kB query, without credentials: are they refused, and is what we keep of them small?"""
    account, pid = linked(smotreshka, tv_catalog)
    big = b'{"x": "' + b"a" * (5 * MB) + b'"}'
    chunks = lambda: (big[i:i + 65536] for i in range(0, len(big), 65536))  # noqa: E731
    sized = post(live, auth=None, data=big, qsTransactionId="qs-big")
    chunked = post(live, auth=None, data=chunks())
    chunked_with_credentials = post(live, data=chunks(), accountId=pid, accountLogin="t_" + account.login,
                                    newOfferId="201", qsTransactionId="qs-big-2")
    long_query = post(live, auth=None, accountLogin="x" * 60_000, qsTransactionId="qs-long")
    assert sized.status_code == 413 and "body" in sized.json()["error"]
    assert chunked.status_code in (401, 413) and chunked_with_credentials.status_code == 413
    assert long_query.status_code == 401
    calls = recorded()
    assert [c.status for c in calls] == [413, chunked.status_code, 413, 401]
    sizes = [stored_size(c) for c in calls]
    assert max(sizes) < 1300, sizes  # a kilobyte of query, the answer and JSON punctuation
    assert calls[0].query == {"qsTransactionId": "qs-big"} and all(c.body is None for c in calls)
    assert len(calls[3].query["accountLogin"]) < 1024
    assert db.session.scalar(select(func.count()).select_from(SmotreshkaUpsale)) == 0


def test_the_size_limit_answers_413_everywhere_in_the_shape_of_each_place(live):
    """A body over the limit on a staff form, on API v1: 413, as a plain page for people and
    as the API's JSON error; never a 500."""
    page = requests.post(f"{live}/login", data={"login": "a" * (2 * MB)}, timeout=30)
    assert page.status_code == 413 and page.headers["Content-Type"].startswith("text/plain")
    api = requests.post(f"{live}/api/v1/payments", data=b"{" + b" " * (2 * MB) + b"}",
                        headers={"Content-Type": "application/json"}, timeout=30)
    assert api.status_code == 413 and api.json()["code"] == 413


def test_guessed_passwords_are_throttled_per_address_without_locking_the_platform_out(smotreshka, tv_catalog):
    """Behind our proxy, one address guesses the password: after 3 wrong tries it is answered
    429 with Retry-After, even with the right password; does the platform's own address still
    get in with the right one?"""
    account, pid = linked(smotreshka, tv_catalog)
    connect(smotreshka, upsale_allowed_ips="10.0.0.0/24")
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201"}
    with serving(TRUSTED_PROXIES="127.0.0.1", CALLBACK_MAX_FAILURES=3) as portal:
        guesses = [post(portal, auth=WRONG, source="10.0.0.66", qsTransactionId=f"g{i}", **q) for i in range(3)]
        assert [r.status_code for r in guesses] == [401, 401, 401]
        locked = post(portal, auth=WRONG, source="10.0.0.66", qsTransactionId="g4", **q)
        right_password = post(portal, source="10.0.0.66", qsTransactionId="g5", **q)
        platform = post(portal, source="10.0.0.7", qsTransactionId="qs-ok", **q)
    assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= 900
    assert right_password.status_code == 429
    assert platform.status_code == 200 and platform.json()["result"] == "operation_ensured"
    calls = recorded()
    assert [(c.remote_addr, c.status) for c in calls] == [("10.0.0.66", 401)] * 3 + [
        ("10.0.0.66", 429), ("10.0.0.66", 429), ("10.0.0.7", 200)]


def test_with_redis_down_guesses_are_still_throttled(app, smotreshka, tv_catalog, live):
    """Redis is down: are wrong passwords still limited (by this process) rather than not at all?"""
    account, pid = linked(smotreshka, tv_catalog)
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201"}
    limit = app.config["CALLBACK_MAX_FAILURES"]
    with redis_down(app):
        answers = [post(live, auth=WRONG, qsTransactionId=f"g{i}", **q).status_code for i in range(limit + 1)]
    assert answers == [401] * limit + [429]


def test_without_trusted_proxies_x_forwarded_for_is_ignored(smotreshka, tv_catalog, live):
    """A caller outside the allow-list claims an allowed address in X-Forwarded-For: with
    TRUSTED_PROXIES unset, is it still refused, and recorded with its real address?"""
    account, pid = linked(smotreshka, tv_catalog)
    connect(smotreshka, upsale_allowed_ips="10.20.0.0/16")
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201", "qsTransactionId": "qs-xff"}
    r = post(live, source="10.20.0.5", **q)
    assert (r.status_code, r.json()) == (403, {"error": "source address not allowed"})
    [call] = recorded()
    assert call.remote_addr == "127.0.0.1"


@pytest.mark.parametrize("trusted", ["1", "127.0.0.1"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_the_source(smotreshka, tv_catalog, trusted):
    """TRUSTED_PROXIES as a hop count or as the proxy's address: the address our proxy appended
    is the caller's, and one the caller wrote itself in front of it is not believed."""
    account, pid = linked(smotreshka, tv_catalog)
    connect(smotreshka, upsale_allowed_ips="10.20.0.0/16")
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201"}
    with serving(TRUSTED_PROXIES=trusted) as portal:
        allowed = post(portal, source="10.20.0.5", qsTransactionId=str(uuid.uuid4()), **q)
        forged = post(portal, source="10.20.0.5, 192.0.2.9", qsTransactionId=str(uuid.uuid4()), **q)
    assert allowed.status_code == 200 and forged.status_code == 403
    assert [c.remote_addr for c in recorded()] == ["10.20.0.5", "192.0.2.9"]


def test_a_password_in_cyrillic_is_checked_not_a_500(smotreshka, tv_catalog, live):
    """A Cyrillic password (the connection's, or a caller's guess) is compared like any other:
    the right one is let in, a wrong one answers 401 and is recorded."""
    from portal.platforms.connections import save_connection

    account, pid = linked(smotreshka, tv_catalog)
    save_connection("smotreshka", url=smotreshka.url, login="lifestream", password="пароль-Смотрёшки",
                    actor="test")
    db.session.commit()
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201",
         "qsTransactionId": str(uuid.uuid4())}
    right = requests.post(f"{live}/upsale/v3/add-subscription/ensure", params=q, timeout=10,
                          auth=(b"lifestream", "пароль-Смотрёшки".encode()))
    wrong = requests.post(f"{live}/upsale/v3/add-subscription/ensure", params=q, timeout=10,
                          auth=(b"lifestream", "пароль".encode()))
    assert (right.status_code, right.json()["result"]) == (200, "operation_ensured")
    assert wrong.status_code == 401
    assert [c.status for c in recorded()][-2:] == [200, 401]


def test_a_flood_of_refused_calls_stores_a_bounded_number_of_records(smotreshka, tv_catalog, live, app, monkeypatch):
    """A stranger keeps calling with wrong credentials: past the limit of records per address,
    is the calls table left alone (the calls are still refused)?"""
    monkeypatch.setitem(app.config, "CALLBACK_MAX_REFUSED_RECORDS", 5)
    monkeypatch.setitem(app.config, "CALLBACK_MAX_FAILURES", 1000)
    account, pid = linked(smotreshka, tv_catalog)
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201"}
    answers = [post(live, auth=WRONG, qsTransactionId=f"f{i}", **q).status_code for i in range(20)]
    assert answers == [401] * 20
    assert len(recorded()) == 5
