"""Bulk messages (issue 19): staff write to a filtered list; the count before sending equals
the list's, the preview is one recipient's message, and a double submit (or ten parallel ones
against a running server) records one notice per subscriber."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from html import unescape

import pytest
import requests
from babel.numbers import format_currency
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.extensions import db
from portal.models import AuditEntry, BulkMessage, Notice, Subscriber
from portal.notifications import bulk
from tests.builders import gen_account, gen_agent, gen_contract, gen_staff, gen_subscriber, gen_tariff
from tests.helpers import HX, field_error, login_in_english, post

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def live_http(app, monkeypatch):
    """The app over real HTTP (plain: the session cookie may not be Secure here)."""
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _people():
    """Twelve subscribers over two agents and two tariffs; a third in debt (their accounts
    blocked by balance); one with two contracts under both agents; two in English."""
    agents = [gen_agent(name="Агент Север"), gen_agent(name="Агент Юг")]
    tariffs = [gen_tariff(name="Домашний"), gen_tariff(name="Бизнес")]
    for i in range(12):
        s = gen_subscriber(full_name=f"Абонент {i:02d}", language="en" if i in (0, 7) else "ru")
        c = gen_contract(s)
        gen_account(contract=c, agent=agents[i % 2], tariff=tariffs[(i // 2) % 2])
        if i % 3 == 0:
            ledger.post(c.id, "correction", Decimal(f"-{100 + i}.00"), actor="t", comment="долг")
            db.session.commit()
        if i == 5:  # a second contract, in debt, with an account of the other agent
            c2 = gen_contract(s)
            gen_account(contract=c2, agent=agents[0], tariff=tariffs[1])
            ledger.post(c2.id, "correction", Decimal("-50.00"), actor="t", comment="долг")
            db.session.commit()
    if True:  # one account disabled: "status" selects by the account's status
        a = db.session.scalars(select(Subscriber).filter_by(full_name="Абонент 02")).one().contracts[0].accounts[0]
        acc.disable(a, actor="t")
        db.session.commit()
    return agents, tariffs


def _expected(agent=None, tariff=None, status=None, below=None) -> set[int]:
    """The subscribers the filter should select, worked out in Python from the cards."""
    db.session.expire_all()
    out = set()
    for s in db.session.scalars(select(Subscriber)):
        for c in s.contracts:
            if below is not None and not c.balance < below:
                continue
            if any((agent is None or a.agent_id == agent) and (tariff is None or a.tariff_id == tariff)
                   and (status is None or a.status == status) for a in c.accounts) \
                    or (c.accounts == [] and agent is tariff is status is None):
                out.add(s.id)
    return out


def _preview(client, **form):
    r = post(client, "/bulk-messages/preview", {"subject": "Тест", "text": "Привет", **form}, headers=HX)
    html = r.get_data(as_text=True)
    m = re.search(r'data-count="(\d+)"', html)
    return r, html, int(m.group(1)) if m else None


def test_the_count_before_sending_is_the_filtered_lists(ctx, client):
    """Does the preview count exactly the subscribers the filters select (each once, however many contracts)?"""
    agents, tariffs = _people()
    gen_staff("boss", role="manager")
    login_in_english(client, "boss")
    cases = [{}, {"agent": agents[0].id}, {"agent": agents[1].id, "balance_below": Decimal("0")},
             {"tariff": tariffs[1].id}, {"status": "blocked"}, {"status": "disabled"},
             {"agent": agents[0].id, "tariff": tariffs[1].id, "balance_below": Decimal("-100")},
             {"balance_below": Decimal("-104.5")}]
    for case in cases:
        expected = _expected(case.get("agent"), case.get("tariff"), case.get("status"), case.get("balance_below"))
        form = {k: str(v) for k, v in case.items()}
        r, html, n = _preview(client, **form)
        assert r.status_code == 200 and "<html" not in html
        assert n == len(expected), (case, n, expected)
        assert bulk.count(bulk.parse_filters(form)) == len(expected)
    assert len(_expected(agents[0].id)) != len(_expected())  # (the filters do narrow)


def test_preview_is_the_first_recipients_message_in_their_language(ctx, client):
    """Does the preview show the message as the first subscriber of the list gets it, in their language?"""
    agents, _ = _people()
    gen_staff("boss", role="manager")
    login_in_english(client, "boss")
    text = "{{ subscriber_name }}: {{ balance|money }}"
    for agent, name in ((None, "Абонент 00"), (agents[1].id, "Абонент 01")):
        first = db.session.get(Subscriber, min(_expected(agent=agent)))
        assert first.full_name == name
        r, html, n = _preview(client, subject="Работы", text=text, **({"agent": str(agent)} if agent else {}))
        shown = format_currency(first.contracts[0].balance, "RUB", locale=first.language)
        assert f"{name}: {shown}" in unescape(html)
    assert [db.session.scalars(select(Subscriber).filter_by(full_name=n)).one().language
            for n in ("Абонент 00", "Абонент 01")] == ["en", "ru"]


def test_a_bad_filter_or_text_is_named_and_nothing_is_sent(ctx, client):
    """Does a wrong amount or an unknown variable say which field, with nothing recorded?"""
    _people()
    gen_staff("boss", role="manager")
    login_in_english(client, "boss")
    r = post(client, "/bulk-messages", {"text": "Баланс:\n{{ balanse }}", "balance_below": "много",
                                        "request_key": "k-bad"})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert field_error(html, "balance_below") == "an amount with at most two decimal places"
    r = post(client, "/bulk-messages", {"text": "Баланс:\n{{ balanse }}", "request_key": "k-bad"})
    assert field_error(r.get_data(as_text=True), "text") == "line 2: unknown variable: balanse"
    r = post(client, "/bulk-messages", {"text": "", "request_key": "k-bad"})
    assert field_error(r.get_data(as_text=True), "text") == "required"
    assert db.session.scalar(select(func.count()).where(Notice.event == "bulk")) == 0
    assert db.session.scalar(select(func.count()).select_from(BulkMessage)) == 0


def test_parallel_submits_of_one_form_send_once(ctx, live_http):
    """Ten clicks at once on "Send" (one form) against a running server: one message, one
    notice per subscriber of the list, and the history says who sent what to how many?"""
    agents, _ = _people()
    gen_staff("boss", role="manager")
    expected = _expected(agent=agents[0].id, below=Decimal("0"))
    assert len(expected) >= 2
    s = requests.Session()
    token = CSRF.search(s.get(f"{live_http}/login", timeout=30).text).group(1)
    s.post(f"{live_http}/login", data={"login": "boss", "password": "password123", "csrf_token": token}, timeout=30)
    form_page = s.get(f"{live_http}/bulk-messages/new", timeout=30).text
    token = CSRF.search(form_page).group(1)
    key = re.search(r'name="request_key" value="([^"]+)"', form_page).group(1)
    cookies = s.cookies.get_dict()
    form = {"csrf_token": token, "request_key": key, "agent": str(agents[0].id), "balance_below": "0",
            "subject": "Долг", "text": "{{ subscriber_name }}, пополните счёт {{ contract_number }}."}

    def click(_):
        return requests.post(f"{live_http}/bulk-messages", data=form, cookies=cookies, allow_redirects=False,
                             timeout=60).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(click, range(10)))
    assert codes == [303] * 10, codes
    db.session.expire_all()
    rows = db.session.execute(select(Notice.subscriber_id, Notice.critical, Notice.data)
                              .where(Notice.event == "bulk")).all()
    assert sorted(r.subscriber_id for r in rows) == sorted(expected)
    assert not any(r.critical for r in rows)
    [message] = db.session.scalars(select(BulkMessage)).all()
    assert message.recipients == len(expected) and message.created_by == "staff:boss"
    assert message.filters == {"agent": agents[0].id, "balance_below": "0"}
    assert {r.data["bulk_id"] for r in rows} == {message.id}
    assert db.session.scalar(select(func.count()).where(AuditEntry.action == "bulk_message.send")) == 1
    history = s.get(f"{live_http}/bulk-messages", timeout=30).text
    assert "Долг" in history and f'<td class="num">{len(expected)}</td>' in history

    # the same form once more, later (a retry): nothing new, and the staff member is told so
    again = s.post(f"{live_http}/bulk-messages", data=form, timeout=60)
    assert again.status_code == 200
    assert db.session.scalar(select(func.count()).where(Notice.event == "bulk")) == len(expected)


def test_a_viewer_may_not_send(ctx, client):
    """May a read-only staff member send a bulk message? (No.)"""
    gen_staff("looker", role="viewer")
    login_in_english(client, "looker")
    assert client.get("/bulk-messages/new").status_code == 403
    assert post(client, "/bulk-messages", {"text": "x", "request_key": "k"}).status_code == 403
