"""Finding people as they call in (issue 16, item 1): a phone in any written form, a name with
ё or е and its words in any order, a contract by its holder's name, a payment by its payer,
an address with its flat, an STB's MAC; one box in the top bar, and Enter opens a single hit."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from portal.billing import directory, ledger
from portal.extensions import db
from portal.models import StalkerStb
from tests.builders import gen_account, gen_contract, gen_staff, gen_subscriber
from tests.helpers import login


@pytest.fixture
def people(app, client):
    """Петров with a mobile number, two namesakes, an account with an address; staff logged in."""
    with app.app_context():
        petrov = gen_subscriber(full_name="Петров Пётр Петрович", phones=["+7 912 345-67-89"], email="p@example.ru")
        other = gen_subscriber(full_name="Петрова Анна", phones=["8 (495) 111-22-33"])
        gen_subscriber(full_name="Сидоров Иван", phones=["+7 900 765-43-21"])
        c = gen_contract(petrov)
        ledger.payment(c.id, Decimal("700"), actor="t", external_id="bank-1")
        a = gen_account(contract=c, login="petrov-home", house="ул. Московская, 1", flat="2")
        db.session.add(StalkerStb(account_id=a.id, mac="00:1A:79:12:34:56"))
        db.session.commit()
        gen_staff("desk", role="viewer")
        ids = {"petrov": petrov.id, "other": other.id, "contract": c.id, "number": c.number, "account": a.id}
    login(client, "desk")
    return ids


def _names(html: str) -> list[str]:
    return re.findall(r'/subscribers/\d+">([^<]+)</a>', html)


@pytest.mark.parametrize("typed", ["345-67", "9123456789", "+7 912", "89123456789", "+7 (912) 345 67 89"])
def test_a_phone_is_found_however_it_is_typed(people, client, typed):
    html = client.get("/subscribers", query_string={"q": typed}).get_data(as_text=True)
    assert "Петров Пётр Петрович" in html and "Сидоров" not in html and "Петрова Анна" not in html


@pytest.mark.parametrize("typed", ["Петр Петрович", "петрович петров", "ПЁТР"])
def test_a_name_is_found_with_e_for_yo_and_words_in_any_order(people, client, typed):
    html = client.get("/subscribers", query_string={"q": typed}).get_data(as_text=True)
    assert "Петров Пётр Петрович" in html and "Сидоров" not in html


def test_contracts_by_holder_payments_by_payer_accounts_by_flat(people, client):
    contracts = client.get("/contracts", query_string={"q": "пётр петров"}).get_data(as_text=True)
    assert people["number"] in contracts
    payments = client.get("/payments", query_string={"q": "петров пётр"}).get_data(as_text=True)
    assert "bank-1" in payments.lower()
    accounts = client.get("/accounts", query_string={"q": "московская кв. 2"}).get_data(as_text=True)
    assert "petrov-home" in accounts
    assert "petrov-home" not in client.get("/accounts", query_string={"q": "кв. 3"}).get_data(as_text=True)


def test_the_top_bar_search_groups_hits_and_enter_opens_a_single_one(people, client):
    page = client.get("/?lang=en").get_data(as_text=True)
    assert re.search(r'<form class="top-search"[^>]*action="/search"', page)

    several = client.get("/search", query_string={"q": "Петров", "go": "1"})
    html = several.get_data(as_text=True)
    assert several.status_code == 200 and set(_names(html)) == {"Петров Пётр Петрович", "Петрова Анна"}
    assert 'id="found-accounts"' not in html or "petrov-home" in html

    one = client.get("/search", query_string={"q": "89123456789", "go": "1"})
    assert one.status_code == 302 and one.headers["Location"].endswith(f"/subscribers/{people['petrov']}")
    by_mac = client.get("/search", query_string={"q": "00-1a-79-12-34-56", "go": "1"})
    assert by_mac.status_code == 302 and by_mac.headers["Location"].endswith(f"/accounts/{people['account']}")
    by_number = client.get("/search", query_string={"q": people["number"], "go": "1"})
    assert by_number.status_code == 302 and by_number.headers["Location"].endswith(f"/contracts/{people['contract']}")
    none = client.get("/search", query_string={"q": "Зайцев", "go": "1"}).get_data(as_text=True)
    assert 'id="nothing-found"' in none


def test_a_changed_phone_is_found_by_its_new_number(app, people, client):
    """The search text follows the card, whoever changes it."""
    with app.app_context():
        from portal.models import Subscriber

        anna = db.session.get(Subscriber, people["other"])
        directory.save_subscriber({"phones": ["+7 926 000-11-22"]}, actor="t", subscriber=anna)
        db.session.commit()
    assert "Петрова Анна" in client.get("/subscribers", query_string={"q": "000-11-22"}).get_data(as_text=True)
    assert "Петрова Анна" not in client.get("/subscribers", query_string={"q": "111-22-33"}).get_data(as_text=True)


def test_the_subscribers_list_shows_phones_and_contract_numbers(people, client):
    html = client.get("/subscribers", query_string={"q": "петров пётр"}).get_data(as_text=True)
    row = re.search(r"<tr>(?:(?!</tr>).)*Петров Пётр Петрович.*?</tr>", html, re.S).group(0)
    assert "+7 912 345-67-89" in row and people["number"] in row
