"""Payment agents over the provider protocol (check / pay, XML), over real HTTP to a live portal:
repeats and parallel twins, refused callers, protocol errors, limits, fees, the staff pages."""
from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal import create_app
from portal.api import provider as provider_api
from portal.api.throttle import FailureLimit
from portal.billing import accounts as acc
from portal.billing import agent_payments as ap
from portal.billing import ledger
from portal.billing.crypto import decrypt
from portal.extensions import db
from portal.models import AgentPayment, AuditEntry, Contract, LedgerEntry, PaymentAgent, ProviderCall
from tests.builders import gen_account, gen_contract, gen_staff, gen_tariff
from tests.helpers import login

SECRET = "agent-Secret-1"
WHEN = "20261203101500"


@pytest.fixture(autouse=True)
def _fresh_failure_counts(monkeypatch):
    """Each test starts with no refused secrets counted in this process either."""
    monkeypatch.setattr(provider_api, "failures", FailureLimit("provider"))


@pytest.fixture
def live(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@contextmanager
def serving(**config):
    """Another app with ``config`` (TRUSTED_PROXIES) over real HTTP, on the same database."""
    other = create_app({"TESTING": True, **config})
    server = make_server("127.0.0.1", 0, other, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        with other.app_context():
            db.engine.dispose()


def make_agent(**kw) -> PaymentAgent:
    data = {"name": "Банк Тест", "slug": "bank-test", "account_field": "contract", "networks": "127.0.0.1/32",
            "secret": SECRET, "min_sum": "10", "max_sum": "15000", "fee_percent": "0", "fee_fixed": "0",
            "enabled": True}
    data.update(kw)
    agent = ap.save_agent(data, actor="test")
    db.session.commit()
    return agent


def call(base, slug="bank-test", auth=("bank-test", SECRET), method="get", headers=None, **params):
    if method == "get":
        r = requests.get(f"{base}/pay/provider/{slug}", params=params, auth=auth, headers=headers, timeout=30)
    else:
        r = requests.post(f"{base}/pay/provider/{slug}", data=params, auth=auth, headers=headers, timeout=30)
    root = ET.fromstring(r.content)
    return r.status_code, {child.tag: child.text for child in root}


def pay(base, txn_id, account, sum_, **kw):
    return call(base, command="pay", txn_id=txn_id, txn_date=WHEN, account=account, sum=sum_, **kw)


def counts() -> tuple[int, int, int]:
    db.session.rollback()
    return (db.session.scalar(select(func.count()).select_from(ProviderCall)),
            db.session.scalar(select(func.count()).select_from(AgentPayment)),
            db.session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "payment")))


def balance(contract_id) -> Decimal:
    db.session.rollback()
    return db.session.get(Contract, contract_id).balance


def test_a_repeated_pay_answers_the_same_prv_txn_and_moves_the_money_once(ctx, live):
    """Does the agent's retry of a pay get the first prv_txn, with the contract credited once?"""
    make_agent()
    c = gen_contract(number="77-000101")
    status, first = pay(live, "900001", "77-000101", "250.50")
    assert status == 200 and first["result"] == "0" and first["osmp_txn_id"] == "900001"
    assert first["sum"] == "250.50" and first["prv_txn"]
    status, again = pay(live, "900001", "77-000101", "250.50")
    assert again["result"] == "0" and again["prv_txn"] == first["prv_txn"]
    assert balance(c.id) == Decimal("250.50")
    entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.contract_id == c.id)).all()
    assert len(entries) == 1 and entries[0].comment == "agent Банк Тест, txn 900001"
    row = db.session.get(AgentPayment, int(first["prv_txn"]))
    assert entries[0].idempotency_key == ap.ledger_key(row.agent_id, "900001") and row.contract_id == c.id
    # txn_date is the agent's local time (BILLING_TZ, Moscow: UTC+3)
    assert row.txn_date == datetime(2026, 12, 3, 7, 15, tzinfo=UTC)
    assert counts() == (2, 1, 1)  # both calls recorded, one payment, one ledger entry


def test_twenty_parallel_pays_with_one_txn_id_make_one_entry(ctx, live):
    """Twenty twins of one pay at once: one ledger entry, and every one answered the same prv_txn?"""
    make_agent()
    c = gen_contract(number="77-000102")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: pay(live, "900002", "77-000102", "100.00"), range(20)))
    assert all(status == 200 and a["result"] == "0" for status, a in answers), answers
    assert len({a["prv_txn"] for _, a in answers}) == 1
    assert balance(c.id) == Decimal("100.00")
    assert counts() == (20, 1, 1)


def test_a_repeat_with_another_sum_or_account_is_refused_and_moves_nothing(ctx, live):
    """A reused txn_id with another sum or account: 300 and no money?"""
    make_agent()
    c = gen_contract(number="77-000103")
    other = gen_contract(number="77-000104")
    _, first = pay(live, "900003", "77-000103", "100.00")
    _, other_sum = pay(live, "900003", "77-000103", "100.01")
    _, other_account = pay(live, "900003", "77-000104", "100.00")
    assert first["result"] == "0"
    assert other_sum["result"] == "300" and "txn_id" in other_sum["comment"] and "prv_txn" not in other_sum
    assert other_account["result"] == "300"
    assert balance(c.id) == Decimal("100.00") and balance(other.id) == Decimal("0.00")
    assert counts()[1:] == (1, 1)


def test_check_for_blocked_disabled_unknown_and_malformed_accounts(ctx, live):
    """check: a balance-blocked account may be paid (0), a disabled one not (7), an unknown 5,
    a malformed 4; and check writes nothing but its record."""
    make_agent(account_field="login", slug="bank-test")
    blocked = gen_account(tariff=gen_tariff(monthly_fee="500"), login="blocked1")
    assert blocked.status == "blocked" and blocked.reasons == ["balance"]
    disabled = gen_account(login="gone1")
    acc.disable(disabled, actor="test")
    db.session.commit()
    manager_blocked = gen_account(login="held1")
    acc.block(manager_blocked, "manager", actor="test")
    db.session.commit()
    before = counts()

    def check(account):
        return call(live, command="check", txn_id="1", account=account, sum="100.00")[1]["result"]

    assert check("blocked1") == "0"
    assert check("held1") == "0"  # money is taken; the manager's block stays (a payment does not lift it)
    assert check("gone1") == "7"
    assert check("nobody") == "5"
    assert check("bad login!") == "4"
    assert counts() == (before[0] + 5, before[1], before[2])


def test_check_by_contract_number_refuses_a_contract_whose_accounts_are_all_disabled(ctx, live):
    """By contract number: 7 when every account of the contract is disabled, 0 with one live."""
    make_agent()
    c = gen_contract(number="77-000105")
    a = gen_account(contract=c)
    assert call(live, command="check", txn_id="1", account="77-000105", sum="50")[1]["result"] == "0"
    acc.disable(a, actor="test")
    db.session.commit()
    assert call(live, command="check", txn_id="1", account="77-000105", sum="50")[1]["result"] == "7"
    assert call(live, command="check", txn_id="1", account="77 000105", sum="50")[1]["result"] == "4"


def test_a_pay_unblocks_a_balance_blocked_account(ctx, live):
    """A blocked subscriber pays at a terminal: is the account active again, with an outbox row?"""
    make_agent(account_field="login")
    account = gen_account(tariff=gen_tariff(monthly_fee="500"), login="debtor1")
    assert account.status == "blocked"
    owed = -balance(account.contract_id)
    _, answer = pay(live, "900006", "debtor1", str(owed + Decimal("100")))
    assert answer["result"] == "0"
    db.session.rollback()
    account = db.session.get(type(account), account.id)
    assert account.status == "active" and account.reasons == []
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "account.unblock", AuditEntry.object_id == account.id)) == 1


def test_a_wrong_secret_or_network_is_refused_and_stores_nothing(ctx, live):
    """Strangers (no secret, a wrong one, another network, an unknown agent) move nothing and
    leave no record?"""
    make_agent()
    make_agent(name="Терминалы", slug="far-away", networks="10.1.0.0/16", secret="")
    c = gen_contract(number="77-000107")
    refused = [
        pay(live, "1", "77-000107", "100", auth=None),
        pay(live, "2", "77-000107", "100", auth=("bank-test", "wrong")),
        pay(live, "3", "77-000107", "100", auth=("someone", SECRET)),
        pay(live, "4", "77-000107", "100", slug="far-away", auth=None),
        pay(live, "5", "77-000107", "100", slug="nobody", auth=None),
    ]
    assert [s for s, _ in refused] == [401, 401, 401, 403, 404]
    assert [a["result"] for _, a in refused] == ["7", "7", "7", "7", "300"]
    assert counts() == (0, 0, 0) and balance(c.id) == 0


def test_wrong_secrets_are_throttled_per_address(app, ctx, live):
    """After CALLBACK_MAX_FAILURES wrong secrets, is the address refused (429) without its secret
    being checked, even the right one?"""
    make_agent()
    gen_contract(number="77-000108")
    limit = app.config["CALLBACK_MAX_FAILURES"]
    statuses = [pay(live, f"g{i}", "77-000108", "100", auth=("bank-test", f"guess{i}"))[0] for i in range(limit)]
    assert statuses == [401] * limit
    status, answer = pay(live, "right", "77-000108", "100")
    assert status == 429 and answer["result"] == "1"
    assert counts() == (0, 0, 0)


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(ctx):
    """An agent allowed from 10.5.0.0/16: a forged X-Forwarded-For is ignored, the one our own
    proxy (TRUSTED_PROXIES) forwards is believed."""
    make_agent(networks="10.5.0.0/16")
    gen_contract(number="77-000109")
    forged = {"X-Forwarded-For": "10.5.0.7"}
    with serving() as direct:
        assert pay(direct, "x1", "77-000109", "100", headers=forged)[0] == 403
    with serving(TRUSTED_PROXIES="127.0.0.1") as behind_proxy:
        status, answer = pay(behind_proxy, "x1", "77-000109", "100", headers=forged)
    assert status == 200 and answer["result"] == "0"
    db.session.rollback()
    assert db.session.scalar(select(ProviderCall.remote_addr)) == "10.5.0.7"


@pytest.mark.parametrize("params, comment", [
    ({"sum": "100,50"}, "sum"), ({"sum": "1e3"}, "sum"), ({"sum": "10.505"}, "sum"), ({"sum": ""}, "sum"),
    ({"sum": "-5"}, "sum"), ({"txn_date": "2026-12-03"}, "txn_date"), ({"txn_date": "20261332101500"}, "txn_date"),
    ({"txn_date": "00010101000000"}, "txn_date"),
    ({"txn_id": ""}, "txn_id"), ({"txn_id": "a" * 65}, "txn_id"), ({"command": "refund"}, "command"),
])
def test_malformed_calls_get_300_and_write_nothing(ctx, live, params, comment):
    """A bad sum, txn_date, txn_id or command: result 300 naming it, no money, only the record?"""
    make_agent()
    c = gen_contract(number="77-000110")
    query = {"command": "pay", "txn_id": "7001", "txn_date": WHEN, "account": "77-000110", "sum": "100.00", **params}
    status, answer = call(live, **query)
    assert status == 200 and answer["result"] == "300" and comment in answer["comment"]
    assert counts() == (1, 0, 0) and balance(c.id) == 0


def test_limits_answer_241_and_242(ctx, live):
    """Below the agent's minimum 241, above its maximum 242, in check and in pay; nothing paid."""
    make_agent(min_sum="10", max_sum="15000")
    c = gen_contract(number="77-000111")
    assert call(live, command="check", txn_id="1", account="77-000111", sum="9.99")[1]["result"] == "241"
    assert call(live, command="check", txn_id="1", account="77-000111", sum="15000.01")[1]["result"] == "242"
    assert pay(live, "l1", "77-000111", "9.99")[1]["result"] == "241"
    assert pay(live, "l2", "77-000111", "15000.01")[1]["result"] == "242"
    assert pay(live, "l3", "77-000111", "15000")[1]["result"] == "0"
    assert balance(c.id) == Decimal("15000.00") and counts()[1:] == (1, 1)


def test_a_posted_form_works_like_the_query(ctx, live):
    """Some agents POST the parameters as a form: same answer, same money?"""
    make_agent()
    c = gen_contract(number="77-000112")
    status, answer = call(live, method="post", command="pay", txn_id="p1", txn_date=WHEN, account="77-000112",
                          sum="42")
    assert status == 200 and answer["result"] == "0" and answer["sum"] == "42.00"
    assert balance(c.id) == Decimal("42.00")


def test_the_fee_is_recorded_and_withheld_only_when_the_agent_says_so(ctx, live):
    """Fee 1.5 % + 2.00: kept on the payment; the contract gets the full sum unless withheld."""
    make_agent(fee_percent="1.5", fee_fixed="2")
    make_agent(name="Удерживает", slug="keeps-fee", secret="", fee_percent="1.5", fee_fixed="2", fee_withheld=True)
    full, net = gen_contract(number="77-000113"), gen_contract(number="77-000114")
    amount = Decimal("333.33")
    fee = (amount * Decimal("0.015")).quantize(Decimal("0.01")) + Decimal("2")  # 5.00 + 2.00
    _, a1 = pay(live, "f1", "77-000113", str(amount))
    _, a2 = pay(live, "f1", "77-000114", str(amount), slug="keeps-fee", auth=None)
    assert a1["result"] == a2["result"] == "0"
    p1, p2 = db.session.get(AgentPayment, int(a1["prv_txn"])), db.session.get(AgentPayment, int(a2["prv_txn"]))
    assert p1.fee == p2.fee == fee == Decimal("7.00")
    assert balance(full.id) == amount and p1.credited == amount
    assert balance(net.id) == amount - fee and p2.credited == amount - fee


def test_the_ledger_stays_append_only_and_equal_to_the_balance(ctx, live):
    """After agent payments next to a staff payment, does the balance equal the ledger sum?"""
    make_agent()
    c = gen_contract(number="77-000115")
    ledger.payment(c.id, Decimal("10"), actor="test", external_id="cash-1")
    db.session.commit()
    for i in range(3):
        pay(live, f"s{i}", "77-000115", "20.20")
    db.session.rollback()
    total = db.session.scalar(select(func.sum(LedgerEntry.__table__.c.amount)).where(LedgerEntry.contract_id == c.id))
    assert balance(c.id) == total == Decimal("10") + 3 * Decimal("20.20")


def test_old_call_records_are_pruned(ctx, live):
    """The daily job deletes call records past KEEP_DAYS and keeps the rest (payments stay)."""
    make_agent()
    gen_contract(number="77-000116")
    pay(live, "o1", "77-000116", "100")
    pay(live, "o2", "77-000116", "100")
    db.session.rollback()
    oldest = db.session.scalars(select(ProviderCall).order_by(ProviderCall.id)).first()
    oldest.at = oldest.at - timedelta(days=ap.KEEP_DAYS + 1)
    db.session.commit()
    from jobs.payments import prune_provider_calls

    assert prune_provider_calls() == {"deleted": 1}
    assert counts() == (1, 2, 2)


# -- staff pages -----------------------------------------------------------------------------------

def _csrf(client, url="/payment-agents") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


FORM = {"name": "Сбер", "slug": "sber", "account_field": "contract", "networks": "192.0.2.0/24, 198.51.100.7",
        "secret": "s3cret-Value", "min_sum": "1", "max_sum": "15000", "fee_percent": "0.8", "fee_fixed": "0",
        "enabled": "1"}


def test_staff_create_an_agent_see_its_url_and_bad_input_names_the_field(app, client):
    """An admin creates an agent: its page shows the URL, the secret is stored encrypted and never
    shown back; bad input names the field and writes nothing."""
    with app.app_context():
        gen_staff("boss", role="admin")
    login(client, "boss")
    bad = {**FORM, "slug": "Сбер!", "networks": "192.0.2.0/24, not-a-net", "min_sum": "0", "max_sum": "abc",
           "fee_percent": "150"}
    r = client.post("/payment-agents/new", data={"csrf_token": _csrf(client), **bad})
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    for name in ("slug", "networks", "min_sum", "max_sum", "fee_percent"):
        assert f'data-field="{name}"' in page, name
    assert "s3cret-Value" not in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PaymentAgent)) == 0
    r = client.post("/payment-agents/new", data={"csrf_token": _csrf(client), **FORM})
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "/pay/provider/sber" in page and "s3cret-Value" not in page
    with app.app_context():
        agent = db.session.scalar(select(PaymentAgent))
        assert agent.secret_enc and "s3cret" not in agent.secret_enc and decrypt(agent.secret_enc) == "s3cret-Value"
        assert agent.fee_percent == Decimal("0.8") and agent.networks == "192.0.2.0/24 198.51.100.7/32"
        audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "payment_agent.create"))
        assert "s3cret" not in str(audit.after)
        ident = agent.id
    # saved again without a secret: the stored one stays
    r = client.post(f"/payment-agents/{ident}", data={"csrf_token": _csrf(client), **FORM, "secret": "",
                                                      "name": "Сбербанк"})
    assert r.status_code == 303
    with app.app_context():
        agent = db.session.get(PaymentAgent, ident)
        assert agent.name == "Сбербанк" and decrypt(agent.secret_enc) == "s3cret-Value"
    r = client.post("/payment-agents/new", data={"csrf_token": _csrf(client), **FORM})
    assert r.status_code == 422 and 'data-field="slug"' in r.get_data(as_text=True)


def test_the_agents_url_is_on_public_url_when_it_is_set(app, client, monkeypatch):
    """The URL staff hand to the bank is the portal's public address (PUBLIC_URL), not the one
    the staff page happened to be opened by."""
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://pay.isp.example")
    with app.app_context():
        gen_staff("boss", role="admin")
    login(client, "boss")
    r = client.post("/payment-agents/new", data={"csrf_token": _csrf(client), **FORM})
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "https://pay.isp.example/pay/provider/sber" in page and "http://localhost/pay/provider" not in page


def test_only_admins_see_payment_agents(app, client):
    with app.app_context():
        gen_staff("mgr", role="manager")
    login(client, "mgr")
    assert client.get("/payment-agents").status_code == 403


def test_staff_search_an_agents_calls_by_txn_id_and_filter_by_result(app, client, live):
    """The calls list finds a txn_id, and the result filter shows only refusals."""
    with app.app_context():
        gen_staff("boss", role="admin")
        agent_id = make_agent().id
        gen_contract(number="77-000117")
    pay(live, "find-me", "77-000117", "100")
    pay(live, "other", "77-000117", "5")  # 241
    login(client, "boss")
    page = client.get(f"/payment-agents/{agent_id}/calls?q=find-me").get_data(as_text=True)
    assert "find-me" in page and ">other<" not in page
    rows = client.get(f"/payment-agents/{agent_id}/calls?result=241", headers={"HX-Request": "true"})
    text = rows.get_data(as_text=True)
    assert "<html" not in text and ">other<" in text and "find-me" not in text


def test_the_terminal_simulator_pays_the_demo_agent_and_unblocks_the_demo_debtor(ctx, live, capsys):
    """After the demo data, does `python -m portal.payments.terminal sidorova <sum>` check, pay
    (the repeat with the same prv_txn) and unblock the demo's balance-blocked subscriber?"""
    from portal import demo
    from portal.billing.blocking import top_up_to_unblock
    from portal.models import Account
    from portal.payments import terminal

    demo.load()
    demo.load_payment_agent()
    demo.load_payment_agent()  # a second `flask demo load` adds no second agent
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(PaymentAgent)) == 1
    debtor = db.session.scalar(select(Account).where(Account.login == "sidorova"))
    assert debtor.status == "blocked" and debtor.reasons == ["balance"]
    due = top_up_to_unblock(debtor.contract)
    assert terminal.main(["sidorova", str(due), "--url", live, "--txn-id", "demo-1", "--repeat"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["check", "pay", "pay"]
    assert out[1].split("prv_txn")[1].split()[0] == out[2].split("prv_txn")[1].split()[0]
    db.session.rollback()
    assert db.session.get(Account, debtor.id).status == "active"
    assert terminal.main(["nobody", "100", "--url", live]) == 1


def test_a_repeat_after_the_account_was_disabled_still_answers_the_first_prv_txn(ctx, live):
    """The agent retries a pay whose answer it lost; meanwhile the account was disabled: the
    retry still gets the first prv_txn (it was paid), and no second payment."""
    make_agent(account_field="login")
    a = gen_account(login="leaving1")
    _, first = pay(live, "r1", "leaving1", "100")
    acc.disable(a, actor="test")
    db.session.commit()
    _, again = pay(live, "r1", "leaving1", "100")
    _, new = pay(live, "r2", "leaving1", "100")
    assert first["result"] == again["result"] == "0" and again["prv_txn"] == first["prv_txn"]
    assert new["result"] == "7"
    assert counts()[1:] == (1, 1)


def test_a_repeat_after_staff_disabled_the_agent_still_answers_the_first_prv_txn(ctx, live):
    """A 7 is final for an agent: a pay it retries after staff disabled it was taken, so the retry
    gets the first prv_txn; a new pay is refused, and the money moved once."""
    agent = make_agent()
    c = gen_contract(number="77-000140")
    _, first = pay(live, "d1", "77-000140", "300.00")
    agent.enabled = False
    db.session.commit()
    _, again = pay(live, "d1", "77-000140", "300.00")
    _, new = pay(live, "d2", "77-000140", "300.00")
    assert first["result"] == again["result"] == "0" and again["prv_txn"] == first["prv_txn"]
    assert new["result"] == "7"
    assert balance(c.id) == Decimal("300.00") and counts()[1:] == (1, 1)


def test_an_agent_open_to_a_wide_network_must_have_a_secret(ctx):
    """0.0.0.0/0 with no secret would let anyone on the internet credit any contract."""
    with pytest.raises(ap.BillingError) as e:
        make_agent(networks="0.0.0.0/0", secret="")
    assert "secret" in e.value.fields
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(PaymentAgent)) == 0
    make_agent(networks="10.0.0.0/16", secret="")  # a /16 is narrow enough on its own
    wide = make_agent(name="Агрегатор", slug="aggregator", networks="0.0.0.0/0 ::/0")
    assert wide.secret_enc


def test_with_redis_down_a_pay_still_goes_through(app, ctx, live):
    """Redis (the queue, the throttle's counters) is down: the pay answers 0 and the money is
    there; the platforms hear of it from the outbox once Redis is back."""
    from tests.platform_fixtures import redis_down

    make_agent()
    c = gen_contract(number="77-000118")
    with redis_down(app):
        status, answer = pay(live, "rd1", "77-000118", "100")
    assert status == 200 and answer["result"] == "0"
    assert balance(c.id) == Decimal("100.00")


def test_with_the_database_down_the_agent_is_told_to_retry(tmp_path):
    """The database cannot be reached: result 1 (temporary: the agent tries again later)."""
    with serving(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/portal.db") as broken:
        status, answer = pay(broken, "db1", "77-000119", "100")
    assert status == 200 and answer["result"] == "1"


def test_the_contract_page_names_the_agent_and_the_txn(app, client, live):
    """Staff open the contract: the payment says which agent paid and its txn_id."""
    with app.app_context():
        gen_staff("boss", role="admin")
        make_agent()
        c = gen_contract(number="77-000120")
        ident = c.id
    assert pay(live, "seen-1", "77-000120", "100")[1]["result"] == "0"
    login(client, "boss")
    page = client.get(f"/contracts/{ident}").get_data(as_text=True)
    assert "agent Банк Тест, txn seen-1" in page and "платёжный агент bank-test" in page
