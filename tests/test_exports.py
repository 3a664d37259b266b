"""Exports of the staff lists (issue 16, item 5): CSV and XLSX with the search, filters and sort
on screen, every row however many pages; totals on the money lists."""
from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest

from portal.billing import ledger
from portal.extensions import db
from tests.builders import gen_contract, gen_staff, gen_subscriber
from tests.helpers import login


@pytest.fixture
def payments(app, client):
    """120 payments from Петров (1.00 ... 120.00), 5 from Сидоров; and a contract in debt."""
    with app.app_context():
        petrov = gen_contract(gen_subscriber(full_name="Петров Пётр"))
        sidorov = gen_contract(gen_subscriber(full_name="Сидоров Иван"))
        for n in range(1, 121):
            ledger.payment(petrov.id, Decimal(n), actor="t", external_id=f"p-{n}")
        for n in range(5):
            ledger.payment(sidorov.id, Decimal("1000.50"), actor="t", external_id=f"s-{n}")
        debtor = gen_contract(gen_subscriber(full_name="Должник"))
        ledger.post(debtor.id, "correction", Decimal("-250.25"), actor="t", comment="долг")
        db.session.commit()
        gen_staff("acct", role="viewer")
    login(client, "acct")


def test_a_csv_export_holds_every_row_the_search_selects_in_order(payments, client):
    r = client.get("/payments/export.csv", query_string={"q": "петров"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    header, body = rows[0], rows[1:]
    assert len(body) == 120  # more than two screens of the list: every row, not one page
    amounts = [Decimal(row[header.index("Сумма" if "Сумма" in header else "Amount")]) for row in body]
    assert amounts == [Decimal(n) for n in range(120, 0, -1)]  # newest first, as on screen
    assert all(row[3] == "Петров Пётр" for row in body)


def test_an_xlsx_export_has_numbers_for_money(payments, client):
    from zipfile import ZipFile

    r = client.get("/payments/export.xlsx", query_string={"q": "сидоров"})
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    sheet = ZipFile(io.BytesIO(r.data)).read("xl/worksheets/sheet1.xml").decode()
    assert len(re.findall(r"<row ", sheet)) == 1 + 5
    assert sheet.count("<v>1000.5</v>") == 5 * 2  # numbers, not text: the amount and what was received


def test_money_lists_show_totals_for_the_filter(payments, client):
    page = client.get("/payments", query_string={"q": "петров", "lang": "en"}).get_data(as_text=True)
    # the page asks for its totals in a request of their own, with the same search
    box = re.search(r'<div id="totals"[^>]*hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "totals=1" in box and "q=" in box
    totals = client.get(box).get_data(as_text=True)
    assert "120" in totals and "7,260.00" in totals  # 1 + 2 + ... + 120
    debt = client.get("/contracts?lang=en&debt=negative").get_data(as_text=True)
    box = re.search(r'<div id="totals"[^>]*hx-get="([^"]+)"', debt).group(1).replace("&amp;", "&")
    totals = client.get(box + "&lang=en").get_data(as_text=True)
    assert "Debtors: <b>1</b>" in totals and "250.25" in totals
    assert "<html" not in totals


def test_exports_say_who_and_what_in_words_as_the_screen_does(app, client):
    """An accountant opens the export in a spreadsheet: the payments' author is the cashier's
    name and the source a word, the audit log's who/what/object read as on screen (no
    `staff:…`, `cash`, `account.activate`), in the page's language."""
    from portal.billing import audit

    with app.app_context():
        c = gen_contract(gen_subscriber(full_name="Петров Пётр"))
        cashier = gen_staff("kassa7", role="admin")
        cashier.full_name = "Мария Кассирова"
        db.session.commit()
        ledger.payment(c.id, Decimal("150.00"), actor="staff:kassa7", external_id="cash-1", source="cash")
        audit.record("staff:kassa7", "account.activate", c, "activated")
        db.session.commit()
    login(client, "kassa7")
    for lang, name_col, who_col, source_word, action_word in (
            ("ru", "Автор", "Кто", "касса", "Учётная запись активирована"),
            ("en", "Author", "Who", "cash desk", "Account activated")):
        client.get("/payments", query_string={"lang": lang})
        export = client.get("/payments/export.csv").get_data(as_text=True).lstrip("\ufeff")
        rows = list(csv.reader(io.StringIO(export)))
        header, (row,) = rows[0], rows[1:]
        assert row[header.index(name_col)] == "Мария Кассирова", lang
        source = row[header.index("Источник" if lang == "ru" else "Source")]
        assert source != "cash" and source.lower() == source_word, (lang, source)
        rows = list(csv.reader(io.StringIO(client.get("/audit/export.csv").get_data(as_text=True).lstrip("\ufeff"))))
        header, body = rows[0], rows[1:]
        who, what, obj = (header.index(h) for h in (who_col, "Действие" if lang == "ru" else "Action",
                                                     "Объект" if lang == "ru" else "Object"))
        assert ["Мария Кассирова", action_word, "договор" if lang == "ru" else "contract"] in \
            [[r[who], r[what], r[obj]] for r in body], body
        assert not any("account.activate" in cell or "staff:" in cell for r in body for cell in r), body


def test_a_name_typed_as_a_formula_stays_text_in_the_csv_and_numbers_stay_numbers(app, client):
    """A subscriber registered as «=HYPERLINK(...)» must not become a live formula in the
    accountant's spreadsheet; a negative balance still reads as a number."""
    with app.app_context():
        c = gen_contract(gen_subscriber(full_name='=HYPERLINK("http://evil.example","click")'))
        ledger.post(c.id, "correction", Decimal("-99.50"), actor="t", comment="долг")
        db.session.commit()
        gen_staff("acct2", role="viewer")
    login(client, "acct2")
    rows = list(csv.reader(io.StringIO(client.get("/contracts/export.csv").get_data(as_text=True).lstrip("\ufeff"))))
    (row,) = rows[1:]
    assert row[1] == "'" + '=HYPERLINK("http://evil.example","click")'
    assert Decimal(row[2]) == Decimal("-99.50")


def test_the_accounts_export_says_why_an_account_is_blocked(app, client):
    """As the list's badge does: "blocked (by balance)", in the page's language."""
    from tests.builders import gen_account, gen_tariff

    with app.app_context():
        a = gen_account(tariff=gen_tariff(monthly_fee="500"))  # no money: blocked by balance
        db.session.commit()
        assert a.status == "blocked"
        login_name = a.login
        gen_staff("acct3", role="viewer")
    login(client, "acct3")
    client.get("/accounts", query_string={"lang": "en"})
    rows = list(csv.reader(io.StringIO(client.get("/accounts/export.csv").get_data(as_text=True).lstrip("\ufeff"))))
    header, body = rows[0], rows[1:]
    (row,) = [r for r in body if r[header.index("Login")] == login_name]
    assert row[header.index("Status")] == "blocked (by balance)"
