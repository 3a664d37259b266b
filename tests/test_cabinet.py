"""The subscriber cabinet: what a subscriber sees and may do, and what they may not."""
from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.extensions import db
from portal.models import Account, AuditEntry, Contract, Subscriber
from tests.builders import (
    gen_contract,
    gen_service,
    gen_staff,
    gen_subscriber,
    subscriber_with_account,
)
from tests.helpers import CABINET_PASSWORD as PASSWORD
from tests.helpers import cabinet_login
from tests.helpers import form_token as token
from tests.helpers import login as staff_login


def en(amount) -> str:
    """An amount as the English cabinet shows it: Babel's, with the operator's currency."""
    return format_currency(Decimal(amount), "RUB", locale="en")


def test_login_shows_my_balance_account_state_and_prices(app, client):
    """After logging in, do I see my balance, my account's state, my tariff and what each service costs?"""
    with app.app_context():
        tv = gen_service(price="250.00", name="Кино+")
        daily = gen_service(price="10.00", charge_period="day", charge_mode="daily_prorata", name="Статический IP")
        _, c, a = subscriber_with_account(services=[tv, daily], monthly_fee="500.00")
        balance, contract_id, account_id = db.session.get(Contract, c.id).balance, c.id, a.id
    r = cabinet_login(client, "anna")
    assert r.status_code == 302 and r.headers["Location"].endswith("/cabinet/")
    html = client.get("/cabinet/").get_data(as_text=True)
    balance_html = re.search(rf'data-balance="{contract_id}">(.*?)</div>', html, re.S).group(1)
    assert en(balance) in balance_html
    card = html[html.index(f'id="account-{account_id}"'):]
    assert "badge-active" in card and "Active" in card
    assert "Домашний anna" in card and en('500.00') in card
    assert re.search(rf"Кино\+.*?{re.escape(en('250'))}</span> <span class=\"muted\">per month", card, re.S)
    assert re.search(rf"Статический IP.*?{re.escape(en('10'))}</span> <span class=\"muted\">per day", card, re.S)


def test_wrong_password_is_refused_in_russian(app, client):
    """A wrong password tells me so in Russian and does not let me in."""
    with app.app_context():
        subscriber_with_account()
    r = cabinet_login(client, "anna", "not-my-password", lang="ru")
    assert r.status_code == 200 and "Неверный логин или пароль." in r.get_data(as_text=True)
    assert client.get("/cabinet/").status_code == 302


def test_login_is_rate_limited_with_a_clear_message(app, client):
    """After five wrong passwords even the right one must wait, and the page says for how long."""
    with app.app_context():
        subscriber_with_account()
    for _ in range(5):
        assert "Неверный логин или пароль." in cabinet_login(client, "anna", "wrong", lang="ru").get_data(as_text=True)
    r = cabinet_login(client, "anna", PASSWORD, lang="ru")
    assert r.status_code == 429 and "Слишком много неудачных попыток" in r.get_data(as_text=True)
    assert client.get("/cabinet/").status_code == 302  # still not logged in


def test_not_logged_in_goes_to_the_login_and_back(app, client):
    """Opening my contract's link before logging in asks me to log in, then shows that contract."""
    with app.app_context():
        _, c, _a = subscriber_with_account()
        contract_id, number = c.id, c.number
    r = client.get(f"/cabinet/contracts/{contract_id}")
    assert r.status_code == 302 and "/cabinet/login" in r.headers["Location"]
    r = client.get(r.headers["Location"] + "&lang=en")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.get_data(as_text=True)).group(1)
    r = client.post("/cabinet/login", data={"login": "anna", "password": PASSWORD, "csrf_token": csrf,
                                            "next": f"/cabinet/contracts/{contract_id}"}, follow_redirects=True)
    assert f"Contract № {number}" in r.get_data(as_text=True)


def test_ledger_is_newest_first_with_running_balance_and_show_more(app, client):
    """Do I see every payment, newest first, with the balance after each, and can I load older ones?"""
    with app.app_context():
        s = gen_subscriber(cabinet_login="anna", cabinet_password=PASSWORD)
        c = gen_contract(s)
        for i in range(1, 36):  # 35 payments of 1, 2, ... 35 roubles
            ledger.payment(c.id, Decimal(i), actor="t", external_id=f"p{i}", comment=f"платёж {i}")
            db.session.commit()
        contract_id = c.id
    cabinet_login(client, "anna")
    html = client.get(f"/cabinet/contracts/{contract_id}").get_data(as_text=True)
    row = (r'class="ledger-row kind-payment".*?платёж (\d+).*?'
           r'class="num l-after">.*?<span class="num[^"]*">([^<]+)</span>')
    rows = re.findall(row, html, re.S)
    assert [int(n) for n, _b in rows] == list(range(35, 5, -1))  # 30 on the first page, newest first
    assert rows[0][1] == en(sum(range(1, 36))) and rows[1][1] == en(sum(range(1, 35)))
    assert "Payment" in html and f"+{en(35)}" in html
    more = re.search(r'hx-get="([^"]+before=\d+)"', html).group(1)
    rest = client.get(more, headers={"HX-Request": "true"}).get_data(as_text=True)
    older = re.findall(r'платёж (\d+).*?class="num l-after">.*?<span class="num[^"]*">([^<]+)</span>', rest, re.S)
    assert "<html" not in rest and [int(n) for n, _b in older] == [5, 4, 3, 2, 1]
    assert older[-1][1] == en(1) and "before=" not in rest  # the first payment: the balance was 1 after it


def test_foreign_and_unknown_ids_answer_404(app, client):
    """Can I open, block or read another subscriber's contract or account by changing the number in the URL?"""
    with app.app_context():
        _, mine, my_account = subscriber_with_account("anna")
        _, theirs, their_account = subscriber_with_account("boris")
        ids = dict(mine=mine.id, theirs=theirs.id, my_account=my_account.id, their_account=their_account.id)
    cabinet_login(client, "anna")
    assert client.get(f"/cabinet/contracts/{ids['mine']}").status_code == 200
    assert client.get(f"/cabinet/accounts/{ids['my_account']}").status_code == 200
    for url in (f"/cabinet/contracts/{ids['theirs']}", f"/cabinet/accounts/{ids['their_account']}",
                "/cabinet/contracts/999999", "/cabinet/accounts/999999", "/cabinet/contracts/abc"):
        r = client.get(url)
        assert r.status_code == 404 and "Not found" in r.get_data(as_text=True), url
        assert "boris" not in r.get_data(as_text=True)
    r = client.post(f"/cabinet/accounts/{ids['their_account']}/block", data={"csrf_token": token(client, "/cabinet/")})
    assert r.status_code == 404
    with app.app_context():
        assert db.session.get(Account, ids["their_account"]).status == "active"


def test_i_can_block_and_unblock_my_account(app, client):
    """Going away, can I block my account myself and unblock it when I am back?"""
    with app.app_context():
        _, _c, a = subscriber_with_account()
        account_id = a.id
    cabinet_login(client, "anna")
    page = client.get(f"/cabinet/accounts/{account_id}").get_data(as_text=True)
    assert "Block the account" in page and "hx-confirm=" in page
    csrf = token(client, f"/cabinet/accounts/{account_id}")
    r = client.post(f"/cabinet/accounts/{account_id}/block", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in body and "badge-blocked" in body and "Blocked by you:" in body
    assert "blocked" in r.headers["HX-Trigger"]
    with app.app_context():
        a = db.session.get(Account, account_id)
        assert (a.status, a.reasons) == ("blocked", ["subscriber"])
        assert db.session.scalar(db.select(AuditEntry.actor).filter_by(action="account.block")) == "cabinet:anna"
    r = client.post(f"/cabinet/accounts/{account_id}/unblock", data={"csrf_token": csrf}, follow_redirects=True)
    assert "badge-active" in r.get_data(as_text=True) and "Your block is lifted." in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Account, account_id).status == "active"


def test_a_managers_block_cannot_be_lifted_in_the_cabinet(app, client):
    """If the operator blocked my account, does the cabinet say why, and refuse to unblock it?"""
    with app.app_context():
        _, _c, a = subscriber_with_account()
        acc.block(a, "manager", actor="manager1")
        db.session.commit()
        account_id = a.id
    cabinet_login(client, "anna")
    page = client.get(f"/cabinet/accounts/{account_id}").get_data(as_text=True)
    assert "Blocked by the operator:" in page and "You cannot lift this block here." in page
    assert f"/cabinet/accounts/{account_id}/unblock" not in page
    r = client.post(f"/cabinet/accounts/{account_id}/unblock", data={"csrf_token": token(client, "/cabinet/")},
                    headers={"HX-Request": "true"})
    assert r.status_code == 409 and "the account is not blocked by the subscriber" in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Account, account_id).reasons == ["manager"]


def test_blocked_by_balance_says_how_much_to_top_up(app, client):
    """When my money ran out, does the cabinet tell me how much to pay to get the service back?"""
    with app.app_context():
        _, c, a = subscriber_with_account(paid=None)
        ledger.post(c.id, "correction", Decimal("-123.45"), actor="t")
        db.session.commit()
        assert db.session.get(Account, a.id).reasons == ["balance"]
        due = -db.session.get(Contract, c.id).balance
    cabinet_login(client, "anna")
    html = client.get("/cabinet/").get_data(as_text=True)
    assert f"Top up at least {en(due)} to unblock." in html and "Blocked by balance:" in html
    page = client.get(f"/cabinet/accounts/{a.id}").get_data(as_text=True)
    assert "You cannot lift this block here." in page and "/unblock" not in page


def test_password_change_names_the_wrong_field(app, client):
    """If I mistype my current password, or the new one twice differently, does the form say which field is wrong?"""
    with app.app_context():
        subscriber_with_account()
    cabinet_login(client, "anna")
    csrf = token(client, "/cabinet/password")
    r = client.post("/cabinet/password", data={"csrf_token": csrf, "old_password": "nope",
                                               "new_password": "new-secret-9", "repeat_password": "new-secret-9"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and re.search(r'data-field="old_password">wrong password<', html)
    r = client.post("/cabinet/password", data={"csrf_token": csrf, "old_password": PASSWORD, "new_password": "short",
                                               "repeat_password": "short"})
    assert re.search(r'data-field="new_password">at least 8 characters<', r.get_data(as_text=True))
    r = client.post("/cabinet/password", data={"csrf_token": csrf, "old_password": PASSWORD,
                                               "new_password": "new-secret-9", "repeat_password": "new-secret-0"})
    assert re.search(r'data-field="repeat_password">the passwords do not match<', r.get_data(as_text=True))
    with app.app_context():
        assert db.session.scalar(db.select(Subscriber).filter_by(cabinet_login="anna")).check_cabinet_password(PASSWORD)


def test_password_change_works_and_ends_my_other_sessions(app, client):
    """After I change my password, does the new one work, the old one not, and is my other phone logged out?"""
    with app.app_context():
        subscriber_with_account()
    other_phone = app.test_client()
    cabinet_login(other_phone, "anna")
    assert other_phone.get("/cabinet/").status_code == 200
    cabinet_login(client, "anna")
    csrf = token(client, "/cabinet/password")
    r = client.post("/cabinet/password", data={"csrf_token": csrf, "old_password": PASSWORD,
                                               "new_password": "new-secret-9", "repeat_password": "new-secret-9"},
                    follow_redirects=True)
    assert "The password is changed." in r.get_data(as_text=True)
    assert client.get("/cabinet/").status_code == 200  # this session stays
    assert other_phone.get("/cabinet/").status_code == 302
    fresh = app.test_client()
    assert "Wrong login or password." in cabinet_login(fresh, "anna", PASSWORD, follow=True).get_data(as_text=True)
    assert cabinet_login(fresh, "anna", "new-secret-9").status_code == 302


def test_logout_ends_the_cabinet_but_not_a_staff_login_in_the_same_browser(app, client):
    """Does logging out of my cabinet log me out, while a staff login in the same browser stays?"""
    with app.app_context():
        subscriber_with_account()
        gen_staff("olga")
    staff_login(client, "olga")
    cabinet_login(client, "anna")
    assert client.get("/").status_code == 200 and client.get("/cabinet/").status_code == 200
    assert client.post("/cabinet/logout").status_code == 400  # no CSRF token: refused
    r = client.post("/cabinet/logout", data={"csrf_token": token(client, "/cabinet/")})
    assert r.status_code == 302 and r.headers["Location"].endswith("/cabinet/login")
    assert client.get("/cabinet/").status_code == 302
    assert client.get("/").status_code == 200  # the staff login is untouched


def test_the_cabinet_speaks_russian_by_default_and_english_on_request(app, client):
    """Is the cabinet in Russian by default, and in English with ?lang=en?"""
    with app.app_context():
        subscriber_with_account()
    cabinet_login(client, "anna", lang="ru")
    ru = client.get("/cabinet/").get_data(as_text=True)
    assert '<html lang="ru">' in ru and "Выйти" in ru
    english = client.get("/cabinet/?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english
    for words in ("Log out", "Contracts and balance", "Balance", "Payments and charges", "Overview"):
        assert words in english
