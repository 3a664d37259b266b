"""Around payments (issue 18 part 5): the payments list by source and by cashier, cancelling a
payment (storno), the cash receipt, and the cabinet's ways to pay."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal.billing import agent_payments as ap
from portal.billing import ledger
from portal.extensions import db
from portal.models import Account, Contract, LedgerEntry, StaffUser
from portal.models.ledger import PAYMENT_SOURCES
from portal.web import money
from tests.builders import gen_account, gen_contract, gen_staff, gen_subscriber, gen_tariff, gen_token
from tests.helpers import login

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def live(app, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)  # (plain HTTP here)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def csrf(client, path: str) -> str:
    return CSRF.search(client.get(path).get_data(as_text=True)).group(1)


def take_cash(client, contract_id: int, amount: str, comment: str = "") -> LedgerEntry:
    """A payment typed in at the contract page, as a cashier does; the entry it made."""
    token = csrf(client, f"/contracts/{contract_id}")
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get(f"/contracts/{contract_id}").get_data(as_text=True))
    r = client.post(f"/contracts/{contract_id}/payments",
                    data={"csrf_token": token, "amount": amount, "comment": comment, "nonce": nonce.group(1)})
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    db.session.expire_all()
    return db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "payment")
                              .order_by(LedgerEntry.id.desc())).first()


def listed_ids(client, **args) -> set[int]:
    html = client.get("/payments", query_string=args).get_data(as_text=True)
    return {int(i) for i in re.findall(r'href="/payments/(\d+)"', html)}


def balance(contract_id: int) -> Decimal:
    db.session.expire_all()
    return db.session.get(Contract, contract_id).balance


def test_the_payments_list_filters_by_each_source_and_by_cashier(ctx, app, client):
    """Does the payments list show only a source's payments, or one cashier's, with totals and
    an export that follow the filter?"""
    gen_staff("kassir1", role="manager")
    gen_staff("kassir2", role="manager")
    c = gen_contract(number="55-000001")
    db.session.commit()
    made: dict[int, tuple[str, str | None]] = {}  # entry id -> (source, cashier login)
    for who, amounts in (("kassir1", ("100.00", "200.00")), ("kassir2", ("300.00",))):
        login(client, who)
        for amount in amounts:
            made[take_cash(client, c.id, amount).id] = ("cash", who)
        client.get("/logout")
    r = client.post("/api/v1/payments", json={"contract_id": c.id, "amount": "40.00", "external_id": "erp-1"},
                    headers={"Authorization": f"Bearer {gen_token('manager')}"})
    assert r.status_code == 201, r.get_json()
    made[r.get_json()["id"]] = ("api", None)
    agent = ap.save_agent({"name": "Банк Тест", "slug": "bank-test", "account_field": "contract",
                           "networks": "127.0.0.1/32", "min_sum": "10", "max_sum": "15000", "fee_percent": "0",
                           "fee_fixed": "0", "enabled": True}, actor="test")
    ap.pay(agent, {"command": "pay", "txn_id": "7001", "txn_date": "20261203101500", "account": "55-000001",
                   "sum": "50.00"})
    # the paths of bank statements and online payments, as they key their entries
    ledger.post(c.id, "payment", Decimal("60.00"), actor="staff:kassir1", idempotency_key="bank:2026-12-01:17:4070")
    ledger.post_payments([dict(contract_id=c.id, amount=Decimal("65.00"), idempotency_key="bank:2026-12-01:18:4070",
                               comment="п/п 18")], actor="staff:kassir1")
    ledger.post(c.id, "payment", Decimal("70.00"), actor="platform:yookassa", idempotency_key="yookassa:2f1-a",
                source="online")
    db.session.commit()
    for e in db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "payment")):
        if e.id not in made:
            made[e.id] = (e.source, None)
    assert sorted(s for s, _ in made.values()) == sorted(["cash"] * 3
                                                         + ["api", "agent", "statement", "statement", "online"])

    gen_staff("boss", role="admin")
    db.session.commit()
    login(client, "boss")
    assert listed_ids(client) == set(made)
    for source in PAYMENT_SOURCES:
        expected = {i for i, (s, _) in made.items() if s == source}
        assert listed_ids(client, source=source) == expected, source
    amounts = {e.id: e.amount for e in db.session.scalars(select(LedgerEntry))}
    for who in ("kassir1", "kassir2"):
        uid = db.session.scalar(select(StaffUser.id).filter_by(login=who))
        expected = {i for i, (_, w) in made.items() if w == who}
        assert listed_ids(client, cashier=uid) == expected, who
        totals = client.get("/payments", query_string={"cashier": uid, "totals": 1}).get_data(as_text=True)
        with app.test_request_context():
            assert money(sum(amounts[i] for i in expected)) in totals
    csv = client.get("/payments/export.csv", query_string={"source": "cash"}).get_data(as_text=True)
    assert len([line for line in csv.splitlines()[1:] if line.strip()]) == 3
    assert "kassir2" in csv and "erp-1" not in csv


def test_storno_cancels_a_payment_with_a_new_entry_and_blocks_again(ctx, app, client):
    """An admin cancels a payment: the balance goes down by its amount, the payment stays as it
    was (marked cancelled, with who, when, why) and a contract it had unblocked is blocked again?"""
    gen_staff("boss", role="admin")
    a = gen_account(tariff=gen_tariff(monthly_fee="500"))
    db.session.commit()
    assert a.status == "blocked"
    login(client, "boss")
    paid = take_cash(client, a.contract_id, "500.00", "в кассе")
    db.session.expire_all()
    assert db.session.get(Account, a.id).status == "active"
    before = balance(a.contract_id)
    original = (paid.id, paid.amount, paid.comment, paid.created_at, paid.author, paid.source)

    token = csrf(client, f"/payments/{paid.id}")
    r = client.post(f"/payments/{paid.id}/storno", data={"csrf_token": token, "reason": "ошибка кассира"})
    assert r.status_code == 303
    assert balance(a.contract_id) == before - Decimal("500.00")
    assert db.session.get(Account, a.id).status == "blocked"
    same = db.session.get(LedgerEntry, paid.id)
    assert (same.id, same.amount, same.comment, same.created_at, same.author, same.source) == original
    storno = db.session.scalar(select(LedgerEntry).where(LedgerEntry.cancels_id == paid.id))
    assert (storno.amount, storno.reason, storno.comment, storno.author) == \
        (Decimal("-500.00"), "storno", "ошибка кассира", "staff:boss")
    page = client.get(f"/payments/{paid.id}").get_data(as_text=True)
    assert 'id="cancelled"' in page and "ошибка кассира" in page
    assert f'action="/payments/{paid.id}/storno"' not in page  # nothing more to cancel
    assert 'class="cancelled"' in client.get("/payments").get_data(as_text=True)
    # again: the first storno answers, nothing moves
    r = client.post(f"/payments/{paid.id}/storno", data={"csrf_token": token, "reason": "ещё раз"})
    assert r.status_code == 303
    assert db.session.scalar(select(func.count()).where(LedgerEntry.cancels_id == paid.id)) == 1
    assert balance(a.contract_id) == before - Decimal("500.00")


def test_cancelled_payments_are_no_money_in_for_totals_export_and_dashboard(ctx, app, client):
    """Three payments, one cancelled: do the list's totals, the export's "Received" column and the
    dashboard's payments today count only the two that stayed (what the bank saw), with the
    cancelled one shown apart and marked?"""
    import csv
    import io

    from portal.billing import stats

    gen_staff("boss", role="admin")
    c = gen_contract(number="55-000077")
    db.session.commit()
    login(client, "boss")
    amounts = [Decimal("100.00"), Decimal("250.50"), Decimal("300.00")]
    paid = [take_cash(client, c.id, str(a)) for a in amounts]
    token = csrf(client, f"/payments/{paid[1].id}")
    assert client.post(f"/payments/{paid[1].id}/storno",
                       data={"csrf_token": token, "reason": "не тот договор"}).status_code == 303
    received = amounts[0] + amounts[2]
    totals = client.get("/payments", query_string={"totals": 1}).get_data(as_text=True)
    with app.test_request_context():
        assert "Платежи: <b>2</b>" in totals
        assert f"Поступило: <b>{money(received)}</b>" in totals
        assert "Отменено платежей: <b>1</b>" in totals and f"Отменено на сумму: <b>{money(amounts[1])}</b>" in totals
    rows = list(csv.reader(io.StringIO(client.get("/payments/export.csv").get_data(as_text=True).lstrip("\ufeff"))))
    header, body = rows[0], rows[1:]
    col = {name: header.index(name) for name in ("Сумма", "Отменён", "Причина отмены", "Поступило")}
    by_amount = {Decimal(r[col["Сумма"]]): r for r in body}
    assert set(by_amount) == set(amounts)
    assert by_amount[amounts[1]][col["Отменён"]] != "" and by_amount[amounts[0]][col["Отменён"]] == ""
    assert by_amount[amounts[1]][col["Причина отмены"]] == "не тот договор"
    assert sum(Decimal(r[col["Поступило"]]) for r in body) == received
    db.session.expire_all()
    assert stats.dashboard(days=1)["payments_today"] == received
    # the balance agrees: the contract holds what was received
    assert balance(c.id) == received


def test_storno_is_for_admins_and_bad_input_names_the_field(ctx, client):
    """A manager may not cancel (403); no reason or an unknown payment is a clear error that
    names the field, and nothing is written?"""
    gen_staff("mgr", role="manager")
    gen_staff("boss", role="admin")
    c = gen_contract()
    paid, _ = ledger.payment(c.id, Decimal("100.00"), actor="staff:mgr", external_id="r-1")
    db.session.commit()
    count = lambda: db.session.scalar(select(func.count()).select_from(LedgerEntry))  # noqa: E731
    n = count()
    login(client, "mgr")
    token = csrf(client, f"/payments/{paid.id}")
    assert client.post(f"/payments/{paid.id}/storno", data={"csrf_token": token, "reason": "x"}).status_code == 403
    client.get("/logout")
    login(client, "boss")
    token = csrf(client, f"/payments/{paid.id}")
    r = client.post(f"/payments/{paid.id}/storno", data={"csrf_token": token, "reason": "  "})
    assert r.status_code == 422 and 'name="reason"' in r.get_data(as_text=True)
    assert re.search(r'class="[^"]*error[^"]*"[^>]*>[^<]+', r.get_data(as_text=True))
    r = client.post("/payments/999999/storno", data={"csrf_token": token, "reason": "x"})
    assert r.status_code == 404 and "payment" in r.get_data(as_text=True)
    db.session.expire_all()
    assert count() == n and balance(c.id) == Decimal("100.00")


def test_ten_parallel_storno_posts_make_one_storno(ctx, live):
    """Ten clicks at once on "Cancel the payment" against a running server: one storno?"""
    gen_staff("boss", role="admin")
    c = gen_contract()
    paid, _ = ledger.payment(c.id, Decimal("250.00"), actor="staff:boss", external_id="par-1")
    db.session.commit()
    s = requests.Session()
    token = CSRF.search(s.get(f"{live}/login", timeout=30).text).group(1)
    r = s.post(f"{live}/login", data={"login": "boss", "password": "password123", "csrf_token": token}, timeout=30)
    page = s.get(f"{live}/payments/{paid.id}", timeout=30)
    assert page.url.endswith(f"/payments/{paid.id}"), (r.status_code, r.url, page.url)
    token = CSRF.search(page.text).group(1)
    cookies = s.cookies.get_dict()

    def click(_):
        return requests.post(f"{live}/payments/{paid.id}/storno", data={"csrf_token": token, "reason": "двойной"},
                             cookies=cookies, allow_redirects=False, timeout=60).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(click, range(10)))
    assert codes == [303] * 10, codes
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(LedgerEntry.cancels_id == paid.id)) == 1
    assert balance(c.id) == Decimal("0.00")


def test_the_cash_receipt_shows_the_payment_as_babel_writes_it(ctx, app, client):
    """The printable receipt of a cash payment: operator, contract, payer, amount, cashier, id?
    A payment from elsewhere has none."""
    boss = gen_staff("boss", role="admin")
    boss.full_name = "Кассир Иванова"
    c = gen_contract(gen_subscriber(full_name="Пётр Плательщиков"), number="55-000777")
    db.session.commit()
    login(client, "boss")
    r = client.post(f"/contracts/{c.id}/payments", data={
        "csrf_token": csrf(client, f"/contracts/{c.id}"), "amount": "1234.5",
        "nonce": re.search(r'name="nonce" value="([^"]+)"',
                           client.get(f"/contracts/{c.id}").get_data(as_text=True)).group(1)},
        follow_redirects=True)
    entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "payment"))
    assert f"/payments/{entry.id}/receipt" in r.get_data(as_text=True)  # offered after taking it
    page = client.get(f"/payments/{entry.id}/receipt").get_data(as_text=True)
    with app.test_request_context():
        shown = money(Decimal("1234.50"))
    assert shown in page and "1234" not in page.replace(shown, "")
    for text in (app.config["OPERATOR_NAME"], "55-000777", "Пётр Плательщиков", "Кассир Иванова", str(entry.id),
                 "@media print"):
        assert text in page
    other, _ = ledger.payment(c.id, Decimal("10.00"), actor="api:erp", external_id="x-1")
    db.session.commit()
    assert client.get(f"/payments/{other.id}/receipt").status_code == 404


def test_the_cabinet_lists_every_enabled_agent_with_the_identifier_to_give(ctx, client):
    """The cabinet's contract page names each enabled agent and what to tell it: the contract
    number or the account's login, per the agent; a disabled agent is not offered?"""
    s = gen_subscriber(cabinet_login="anna", cabinet_password="cabinet-pass-1")
    c = gen_contract(s, number="55-000900")
    gen_account(contract=c, login="anna-home")
    base = {"networks": "127.0.0.1/32", "min_sum": "10", "max_sum": "15000", "fee_percent": "0", "fee_fixed": "0"}
    ap.save_agent({**base, "name": "Сбер", "slug": "sber", "account_field": "contract", "enabled": True}, actor="t")
    ap.save_agent({**base, "name": "Киви", "slug": "qiwi", "account_field": "login", "enabled": True}, actor="t")
    ap.save_agent({**base, "name": "Закрытый", "slug": "gone", "account_field": "contract", "enabled": False},
                  actor="t")
    db.session.commit()
    token = csrf(client, "/cabinet/login")
    client.post("/cabinet/login", data={"login": "anna", "password": "cabinet-pass-1", "csrf_token": token})
    page = client.get(f"/cabinet/contracts/{c.id}").get_data(as_text=True)
    items = {name: body for name, body in re.findall(r'class="cab-agent"><b>([^<]+)</b>:(.*?)</li>', page, re.S)}
    assert set(items) == {"Сбер", "Киви"}
    assert "<code>55-000900</code>" in items["Сбер"] and "anna-home" not in items["Сбер"]
    assert "<code>anna-home</code>" in items["Киви"] and "55-000900" not in items["Киви"]


def test_the_demo_data_has_payments_of_every_source_and_a_cancelled_one(ctx):
    """After `flask demo load`, does each source filter of the payments list find something, and
    is one payment cancelled?"""
    from portal import demo

    demo.load()
    db.session.commit()
    sources = set(db.session.scalars(select(LedgerEntry.source).where(LedgerEntry.kind == "payment")))
    assert sources == set(PAYMENT_SOURCES)
    cashiers = set(db.session.scalars(select(LedgerEntry.cashier_id).where(LedgerEntry.cashier_id.is_not(None))))
    assert len(cashiers) == 2
    assert db.session.scalar(select(func.count()).where(LedgerEntry.reason == "storno")) == 1
