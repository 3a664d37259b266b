"""The payments list searches the payments' texts beside the ledger (``payment_texts``), kept by
database triggers: the same payments as the search over the ledger and the payers' contracts,
however the page is found, and the texts follow postings and renames with no ledger row
changed."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, select, text

from portal.billing import directory, ledger
from portal.config import normalize_db_url
from portal.extensions import db
from portal.models import Contract, LedgerEntry, PaymentText, Subscriber
from portal.models.search import matches
from tests.builders import gen_contract, gen_staff, gen_subscriber
from tests.helpers import flask_db, login, scratch_database

HX = {"HX-Request": "true"}

PEOPLE = [  # (full name, phone): ё and е, two words in any order, names inside other names
    ("Кузнецова Алёна Петровна", "+7 912 345-67-01"),
    ("Кузнецов Пётр Иванович", "8 (912) 345-67-02"),
    ("Семёнова Анна Кузьминична", "+7 913 000-11-22"),
    ("Петрова Елена", "+7 914 555-00-03"),
    ("ООО «Кузнецкий мост»", "+7 495 123-45-67"),
]
COMMENTS = ["Сбербанк Онлайн", "Терминал QIWI", None, "Касса офиса", "СБП по QR-коду", "оплата за май"]
QUERIES = ["кузнецова", "Кузнецов", "алена кузнецова", "Алёна", "пётр кузнецов", "петр", "семенова анна",
           "9123456701", "+7 912 345", "8 912 345-67-02", "345-67", "мост", "SBER-1", "qiwi-", "касса", "Онлайн",
           "PAY-3", "pay-", "оплата", "кузнецова петровна алена", "нет такого", "x"]


def _payment_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<td><a href="/payments/(\d+)">', html)]


def _today_s_search(q: str, source: str | None = None) -> list[int]:
    """The payments the list found before payment_texts: the payment id, the comment, or
    the payer's contract text (every word), newest first."""
    cond = LedgerEntry.idempotency_key.icontains(q.strip(), autoescape=True) | \
        LedgerEntry.comment.icontains(q.strip(), autoescape=True)
    if (payer := matches(Contract.search_text, q)) is not None:
        cond = cond | payer
    query = select(LedgerEntry.id).join(Contract, Contract.id == LedgerEntry.contract_id) \
        .where(LedgerEntry.kind == "payment", cond)
    if source:
        query = query.where(LedgerEntry.source == source)
    return list(db.session.scalars(query.order_by(LedgerEntry.id.desc())))


@pytest.fixture
def payers(app):
    with app.app_context():
        gen_staff("desk", role="viewer")
        contracts = []
        for i, (name, phone) in enumerate(PEOPLE):
            s = gen_subscriber(full_name=name, phones=[phone])
            contracts.append(gen_contract(s, number=f"PAY-{i + 1}").id)
        kinds = ["sber", "qiwi", "cash", "sbp"]
        for n in range(36):
            cid = contracts[(n * 7) % len(contracts)]
            ledger.payment(cid, Decimal("10.00") + n, actor="t", external_id=f"{kinds[n % 4].upper()}-{n}",
                           comment=COMMENTS[n % len(COMMENTS)], source="api" if n % 3 else "agent")
            if n % 5 == 0:  # charges in between: not payments, never in the list
                ledger.post(cid, "charge", Decimal("-1.00"), actor="t", comment="Кузнецова abonent fee")
        db.session.commit()
    return contracts


def _every(client, url: str) -> list[int]:
    seen = []
    while url:
        html = client.get(url, headers=HX).get_data(as_text=True)
        seen += _payment_ids(html)
        more = re.search(r'<tr class="more">.*?hx-get="([^"]+)"', html, re.S)
        url = more.group(1).replace("&amp;", "&") if more else None
    return seen


@pytest.mark.parametrize("limits", ["default", "tiny walks", "few matches"])
def test_the_payments_search_finds_the_same_payments_as_before(app, client, monkeypatch, payers, limits):
    """Whatever the query (ё or е, words in any order, a phone in any form, a payment id, a
    comment, a contract number) and however a page is found (a walk, walks that go on, the
    indexes), does the list show exactly the payments the search over the ledger and the payers'
    contracts finds, newest first and oldest first, with a filter too, and totals that count
    them?"""
    from portal import listing
    from portal.admin import lists

    if limits != "default":
        monkeypatch.setattr(listing, "WALK_ROWS", 3)
        monkeypatch.setattr(listing, "SET_ROWS", 1 if limits == "tiny walks" else 100)
        monkeypatch.setattr(listing, "LONG_WALK_ROWS", 6)
        monkeypatch.setattr(lists, "PAGE_SIZE", 2)
    login(client, "desk")
    found_any = 0
    for q in QUERIES:
        with app.app_context():
            expected = _today_s_search(q)
            by_source = _today_s_search(q, "agent")
        found_any += bool(expected)
        assert _every(client, f"/payments?q={q}") == expected, q
        assert _every(client, f"/payments?q={q}&sort=created") == expected[::-1], q
        assert _every(client, f"/payments?q={q}&source=agent") == by_source, q
        assert _every(client, f"/payments?q={q}&source=agent&period=30&sort=created") == by_source[::-1], q
        totals = client.get(f"/payments?q={q}&totals=1&lang=en").get_data(as_text=True)
        assert f"Payments: <b>{len(expected)}</b>" in totals, q
    assert found_any >= len(QUERIES) - 3  # (the data set is not empty for the queries)


def test_the_payers_found_by_name_are_the_expected_ones(app, client, payers):
    """A hand check of the same: «алена кузнецова» finds Кузнецова Алёна's payments and no
    Кузнецов's; a phone typed with 8 finds Кузнецов Пётр's."""
    login(client, "desk")
    with app.app_context():
        of = [sorted(db.session.scalars(select(LedgerEntry.id).where(
            LedgerEntry.kind == "payment", LedgerEntry.contract_id == cid))) for cid in payers[:2]]
    assert of[0] and of[1]
    assert sorted(_payment_ids(client.get("/payments?q=алена кузнецова", headers=HX).get_data(as_text=True))) == of[0]
    assert sorted(_payment_ids(client.get("/payments?q=89123456702", headers=HX).get_data(as_text=True))) == of[1]


def test_payment_texts_follow_postings_and_renames(app, client):
    """Does every payment (and nothing else) get its texts as posted, with its payer's text;
    does a rename of the payer (through the staff form) rewrite them, with no ledger row
    changed; does a payment rolled back leave none?"""
    from tests.helpers import post

    with app.app_context():
        gen_staff("editor", role="manager")
        s = gen_subscriber(full_name="Лебедев Олег", phones=["+7 915 222-33-44"])
        c = gen_contract(s, number="R-1")
        other = gen_contract(gen_subscriber(full_name="Орлов Пётр"), number="R-2")
        pay, _ = ledger.payment(c.id, Decimal("100"), actor="t", external_id="ren-1", comment="Сбербанк")
        ledger.post(c.id, "charge", Decimal("-5"), actor="t")
        ledger.payment(other.id, Decimal("7"), actor="t", external_id="other-1")
        db.session.commit()
        ledger.payment(c.id, Decimal("1"), actor="t", external_id="gone-1")
        db.session.rollback()
        rows = {r.entry_id: r for r in db.session.scalars(select(PaymentText))}
        payments = db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "payment")).all()
        assert sorted(rows) == sorted(e.id for e in payments) and len(rows) == 2
        mine = rows[pay.id]
        assert (mine.contract_id, mine.key, mine.comment, mine.payer) == \
            (c.id, "payment:ren-1", "Сбербанк", db.session.get(Contract, c.id).search_text)
        assert "лебедев олег" in mine.payer and "79152223344" in mine.payer
        ledger_before = [tuple(r) for r in db.session.execute(select(LedgerEntry.__table__).order_by(LedgerEntry.id))]
        sid, pid, other_id = s.id, pay.id, other.id
    login(client, "editor")
    done = post(client, f"/subscribers/{sid}", {"kind": "person", "full_name": "Лебедёва Ольга",
                                                "phones": "8 (917) 555-66-77"})
    assert done.status_code == 303
    with app.app_context():
        mine = db.session.get(PaymentText, pid)
        assert mine.payer == db.session.get(Contract, mine.contract_id).search_text
        assert "лебедева ольга" in mine.payer and "79175556677" in mine.payer and "олег" not in mine.payer
        assert "орлов петр" in db.session.scalar(select(PaymentText.payer).where(
            PaymentText.contract_id == other_id))
        assert [tuple(r) for r in db.session.execute(select(LedgerEntry.__table__).order_by(LedgerEntry.id))] == \
            ledger_before
        directory.save_subscriber({"full_name": "Лебедева Ольга", "phones": ["8 (917) 555-66-77"]},
                                  actor="t", subscriber=db.session.get(Subscriber, sid))
        db.session.rollback()  # (a rename rolled back leaves the texts as they were)
        assert "лебедева ольга" in db.session.get(PaymentText, pid).payer


def test_the_migration_fills_the_texts_of_payments_already_posted_and_goes_down(app, tmp_path):
    """Upgrading a database with payments gives each its texts (and no charge one), the
    triggers then keep them; the downgrade removes the table and the triggers."""
    url = scratch_database("payment_texts", tmp_path)
    flask_db(url, "upgrade", "8c6bd4e5f607", check=True)
    engine = create_engine(normalize_db_url(url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO subscribers (id, kind, full_name, phones, created_at, search_text) "
                          "VALUES (1, 'person', 'Old', '[]', CURRENT_TIMESTAMP, 'old')"))
        conn.execute(text("INSERT INTO contracts (id, number, subscriber_id, credit_limit, do_not_block, balance, "
                          "created_at, search_text) VALUES (1, 'c-1', 1, 0, FALSE, 0, CURRENT_TIMESTAMP, 'c-1 old')"))
        conn.execute(text("INSERT INTO ledger_entries (id, contract_id, kind, amount, created_at, idempotency_key, "
                          "comment) VALUES (1, 1, 'payment', 500, CURRENT_TIMESTAMP, 'payment:k1', 'Сбер'), "
                          "(2, 1, 'charge', -100, CURRENT_TIMESTAMP, NULL, 'fee')"))
    flask_db(url, "upgrade", check=True)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT entry_id, contract_id, key, comment, payer FROM payment_texts")).all() == \
            [(1, 1, "payment:k1", "Сбер", "c-1 old")]
        conn.execute(text("INSERT INTO ledger_entries (id, contract_id, kind, amount, created_at) "
                          "VALUES (3, 1, 'payment', 100, CURRENT_TIMESTAMP), (4, 1, 'charge', -1, CURRENT_TIMESTAMP)"))
        conn.execute(text("UPDATE contracts SET search_text = 'c-1 new' WHERE id = 1"))
        assert conn.execute(text("SELECT entry_id, payer FROM payment_texts ORDER BY entry_id")).all() == \
            [(1, "c-1 new"), (3, "c-1 new")]
    flask_db(url, "downgrade", "8c6bd4e5f607", check=True)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO ledger_entries (id, contract_id, kind, amount, created_at) "
                          "VALUES (5, 1, 'payment', 100, CURRENT_TIMESTAMP)"))
        conn.execute(text("UPDATE contracts SET search_text = 'c-1 again' WHERE id = 1"))
        assert "payment_texts" not in set(conn.dialect.get_table_names(conn))
    flask_db(url, "upgrade", check=True)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT entry_id, payer FROM payment_texts ORDER BY entry_id")).all() == \
            [(1, "c-1 again"), (3, "c-1 again"), (5, "c-1 again")]
    engine.dispose()
