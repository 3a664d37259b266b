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


def _contract_numbers(html: str) -> list[str]:
    return re.findall(r'<td><a href="/contracts/\d+">([^<]+)</a></td>', html)


def test_a_renamed_subscriber_s_contracts_and_payments_follow_the_card(app, client):
    """H3: contracts and payments are searched by the contract's own copy of its holder's name
    and phones. When staff change the card, are the contracts and the payments found by the new
    name and phone at once, and no longer by the old ones (a second contract, added later, too)?"""
    from tests.helpers import post

    with app.app_context():
        gen_staff("editor", role="manager")
        s = gen_subscriber(full_name="Лебедев Олег", phones=["+7 915 222-33-44"])
        first = gen_contract(s, number="R-1")
        gen_contract(s, number="R-2")
        gen_contract(gen_subscriber(full_name="Орлов Пётр", phones=["+7 916 000-00-01"]), number="R-3")
        ledger.payment(first.id, Decimal("100"), actor="t", external_id="ren-1")
        db.session.commit()
        sid = s.id
    login(client, "editor")
    assert sorted(_contract_numbers(client.get("/contracts?q=лебедев").get_data(as_text=True))) == ["R-1", "R-2"]

    done = post(client, f"/subscribers/{sid}", {"kind": "person", "full_name": "Лебедёва Ольга",
                                                "phones": "8 (917) 555-66-77"})
    assert done.status_code == 303
    for q in ("лебедева ольга", "9175556677", "555-66"):
        assert sorted(_contract_numbers(client.get(f"/contracts?q={q}").get_data(as_text=True))) == ["R-1", "R-2"], q
        assert "ren-1" in client.get(f"/payments?q={q}").get_data(as_text=True), q
    for q in ("лебедев олег", "222-33-44"):
        assert _contract_numbers(client.get(f"/contracts?q={q}").get_data(as_text=True)) == [], q
        assert "ren-1" not in client.get(f"/payments?q={q}").get_data(as_text=True), q

    post(client, f"/subscribers/{sid}/contracts", {"number": "R-9"})
    assert sorted(_contract_numbers(client.get("/contracts?q=ольга лебедева").get_data(as_text=True))) == \
        ["R-1", "R-2", "R-9"]


def test_a_contract_s_search_text_changes_in_the_card_s_transaction(app):
    """H3: the contract's copy is written with the card, in the same transaction: a rename
    rolled back leaves the contracts found by the old name, and one committed by the new."""
    from sqlalchemy import select

    from portal.models import Contract

    with app.app_context():
        s = gen_subscriber(full_name="Зорин Ян", phones=["+7 918 100-20-30"])
        c = gen_contract(s, number="Z-7")
        texts = lambda: db.session.execute(select(Contract.search_text).where(Contract.id == c.id)).scalar()  # noqa: E731
        assert texts() == "z-7 зорин ян 79181002030"
        directory.save_subscriber({"full_name": "Зорин Ёжик"}, actor="t", subscriber=s)
        db.session.flush()
        assert texts() == "z-7 зорин ежик 79181002030"  # (within the transaction)
        db.session.rollback()
        assert texts() == "z-7 зорин ян 79181002030"
        directory.save_subscriber({"full_name": "Зорин Ёжик", "phones": ["8 918 999-00-00"]}, actor="t",
                                  subscriber=db.session.get(type(s), s.id))
        db.session.commit()
        db.session.expire_all()
        assert texts() == "z-7 зорин ежик 79189990000"


def test_a_word_inside_another_is_no_condition_of_its_own(people, client):
    """H7: «петр петрович» finds whoever holds «петрович» (which holds «петр»): the same rows as
    both words, searched as one condition (the planner then expects as many as there are)."""
    from portal.models.search import terms

    assert terms("Пётр Петрович петр") == ["петрович"]
    assert terms("кв. 12 2") == ["кв.", "12"]
    with client.application.app_context():
        gen_subscriber(full_name="Сидоров Иван Петрович")
    html = client.get("/subscribers", query_string={"q": "петр петрович"}).get_data(as_text=True)
    assert sorted(_names(html)) == ["Петров Пётр Петрович", "Сидоров Иван Петрович"]


def test_the_top_bar_search_shows_the_same_newest_hits_however_many_match(app, client, monkeypatch):
    """H10: the top bar walks the newest ids first and asks the trigram index only below them;
    the page lists the same newest LIMIT people and accounts either way, and no one who does not match."""
    from portal.admin import search

    with app.app_context():
        people = [gen_subscriber(full_name=f"Абонент {i}", phones=[f"+7 912 100-00-{i:02d}"]) for i in range(6)]
        gen_subscriber(full_name="Чужой", phones=["+7 900 100-00-01"])
        for i, s in enumerate(people):
            gen_account(contract=gen_contract(s), login=f"home-{i}", house="ул. Садовая, 7", flat=str(i))
        gen_staff("desk", role="viewer")
        expected = [f"Абонент {i}" for i in range(5, 1, -1)]  # the newest four of six
    login(client, "desk")
    monkeypatch.setattr(search, "LIMIT", 4)
    pages = {}
    # the walk finds all four / walks 2 ids and the index finds the rest / the index finds all
    for steps, stride in ((2, 5000), (2, 1), (0, 1)):
        monkeypatch.setattr(search, "STEPS", steps)
        monkeypatch.setattr(search, "STRIDE", stride)
        html = client.get("/search", query_string={"q": "+7 912"}).get_data(as_text=True)
        assert _names(html) == expected
        streets = client.get("/search", query_string={"q": "садовая"}).get_data(as_text=True)
        assert re.findall(r"home-\d", streets) == [f"home-{i}" for i in range(5, 1, -1)]
        pages[steps, stride] = tuple(_without_csrf(page) for page in (html, streets))
    assert pages[2, 5000] == pages[2, 1] == pages[0, 1]


def _without_csrf(html: str) -> str:
    """The page without its CSRF token: the token is signed with the second it was made in, so
    two renderings of one page differ in it when a second boundary falls between them."""
    html = re.sub(r'("X-CSRFToken": ")[^"]*(")', r"\1\2", html)
    return re.sub(r'(name="csrf_token" value=")[^"]*(")', r"\1\2", html)
