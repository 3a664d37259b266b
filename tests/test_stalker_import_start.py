""""+" of a Stalker user who is watching (issue 13, item 7): staff choose how billing starts,
with the amounts shown first; the default never blocks; money moves through the ledger once.
The emulator over real HTTP; the sync in-process (reconcile_account) as the worker runs it."""
from __future__ import annotations

import calendar
import re
import threading
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from babel.dates import format_date
from babel.numbers import format_currency
from sqlalchemy import func, select

from portal.billing import clock, directory, ledger
from portal.extensions import db
from portal.models import Account, AssignedService, LedgerEntry, Tariff
from portal.platforms.reconcile import reconcile_account
from portal.platforms.stalker import console
from tests.builders import gen_account, gen_agent
from tests.helpers import HX, login, post
from tests.stalker_fixtures import ADMIN, row_id

FEE = Decimal("300.00")


def rest_of_month(fee: Decimal) -> Decimal:
    """The fee for today to the month's end, as the charging rules say (monthly in advance)."""
    today = clock.today()
    dim = calendar.monthrange(today.year, today.month)[1]
    return (fee * (dim - today.day + 1) / dim).quantize(Decimal("0.01"), ROUND_HALF_UP)


@pytest.fixture
def watching(stalker, tv_agent):
    """Four Stalker users on plan 9001 (fee 300 in billing), three watching, one blocked."""
    stalker.add_user("w_charge", "801", "9001", 1, "00:1A:79:00:08:01", full_name="Зритель Один")
    stalker.add_user("w_credit", "802", "9001", 1, "00:1A:79:00:08:02", full_name="Зритель Два")
    stalker.add_user("w_next", "803", "9001", 1, "00:1A:79:00:08:03", full_name="Зритель Три")
    stalker.add_user("w_off", "804", "9001", 0, "00:1A:79:00:08:04", full_name="Зритель Четыре")
    console.refresh(("accounts", "tariffs"), actor="test")
    console.import_tariff(row_id("tariffs", "9001"), actor="test")
    directory.save_tariff({"monthly_fee": str(FEE)}, actor="test", tariff=db.session.get(Tariff, 9001))
    db.session.commit()
    return stalker


def entries(account: Account) -> list[tuple[str, Decimal]]:
    return [(e.kind, e.amount) for e in db.session.scalars(
        select(LedgerEntry).filter_by(contract_id=account.contract_id).order_by(LedgerEntry.id))]


def m(amount) -> str:
    """An amount as the (English) staff page writes it: Babel, the operator's currency."""
    return format_currency(Decimal(amount), "RUB", locale="en")


def option_html(html: str, option: str) -> str:
    part = html[html.index(f'data-option="{option}"'):]
    return part[:part.index("</label>")]


def test_the_dialog_shows_what_each_way_moves_and_preselects_one_that_does_not_block(staff, watching):
    """"+" on a watching user: does the dialog show the charge, the credit, the balance after
    and the monthly fee for each way, warn where the balance rule would block, and preselect
    "credit" for a new subscriber with balance 0?"""
    due = rest_of_month(FEE)
    r = staff.get(f"/stalker/accounts/{row_id('accounts', '802')}/add", headers=HX)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in html and "active: watching" in html
    charge, credit, nxt = (option_html(html, o) for o in ("charge", "credit", "next_month"))
    assert f'<span class="charge"><span class="num">{m(due)}</span>' in charge
    assert f'<span class="balance-after"><span class="num neg">{m(-due)}</span>' in charge
    assert "the balance rule blocks the account" in charge and "checked" not in charge
    assert f'<span class="credit"><span class="num">{m(due)}</span>' in credit and " checked" in credit
    assert f'<span class="balance-after"><span class="num">{m(0)}</span>' in credit and "blocks" not in credit
    first = format_date(clock.month_end(clock.today()) + timedelta(days=1), "short", locale="en")
    assert "nothing now" in nxt and f"{m(300)} a month from {first}" in nxt and "blocks" not in nxt


def test_an_unknown_way_to_start_is_refused_naming_the_field(staff, watching):
    """A forged "start" value: refused, the field named, nothing created."""
    r = post(staff, f"/stalker/accounts/{row_id('accounts', '801')}/add", {"start": "free_forever"}, headers=HX)
    assert r.status_code == 422 and 'data-field="start"' in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_each_way_to_start_moves_what_the_dialog_said(staff, watching):
    """Charge now, credit the rest of the month, start next month: do the ledger, the balance,
    the account's state and Stalker's status follow each choice?"""
    due = rest_of_month(FEE)
    for number, option in (("801", "charge"), ("802", "credit"), ("803", "next_month")):
        r = post(staff, f"/stalker/accounts/{row_id('accounts', number)}/add", {"start": option}, headers=HX)
        assert r.status_code == 200 and "Added to billing" in r.get_data(as_text=True)
    db.session.expire_all()
    charged, credited, later = (db.session.scalar(select(Account).filter_by(login=login))
                                for login in ("w_charge", "w_credit", "w_next"))

    assert entries(charged) == [("charge", -due)] and charged.contract.balance == -due
    assert (charged.status, charged.reasons) == ("blocked", ["balance"])
    assert entries(credited) == [("correction", due), ("charge", -due)] and credited.contract.balance == 0
    assert credited.status == "active"
    assert entries(later) == [] and later.contract.balance == 0 and later.status == "active"
    fee = db.session.scalar(select(AssignedService).filter_by(account_id=later.id))
    assert fee.starts_on == clock.month_end(clock.today()) + timedelta(days=1)

    for account, status in ((charged, 0), (credited, 1), (later, 1)):
        assert reconcile_account("stalker", account.id) == "ok"
        assert watching.find(login=account.login)["status"] == status
    assert len([u for u in watching.users.values() if u["login"].startswith("w_")]) == 4  # nobody created twice


def test_the_default_never_blocks_a_watching_user(staff, watching, tv_agent):
    """Without a choice: a new subscriber is credited; a subscriber whose contract has the money
    is charged; someone Stalker shows blocked comes in blocked with nothing charged."""
    due = rest_of_month(FEE)
    internet = gen_account(login="w_charge", agent=gen_agent(kind="radius"))  # billing has that login
    ledger.payment(internet.contract_id, Decimal("1000.00"), actor="test", external_id="w-1")
    db.session.commit()
    for number in ("801", "802", "804"):
        assert post(staff, f"/stalker/accounts/{row_id('accounts', number)}/add", {}, headers=HX).status_code == 200
    db.session.expire_all()
    paid = db.session.scalar(select(Account).filter_by(login="w_charge-tv"))
    new = db.session.scalar(select(Account).filter_by(login="w_credit"))
    off = db.session.scalar(select(Account).filter_by(login="w_off"))
    assert paid.contract_id == internet.contract_id and paid.status == "active"
    assert paid.contract.balance == Decimal("1000.00") - due
    assert new.status == "active" and new.contract.balance == 0
    assert (off.status, off.reasons, entries(off)) == ("blocked", ["manager"], [])
    for account in (paid, new):
        assert reconcile_account("stalker", account.id) == "ok"
    assert watching.find(ls="801")["status"] == 1 and watching.find(login="w_credit")["status"] == 1


def test_a_double_click_makes_one_account_and_moves_money_once(app, staff, watching):
    """Two "+" on the same row at once (a double click, two staff): one account, one credit,
    one charge; the second answer says it is in billing already."""
    due = rest_of_month(FEE)
    url = f"/stalker/accounts/{row_id('accounts', '802')}/add"
    other, tokens = app.test_client(), []
    for client in (staff, other):
        with app.app_context():  # a request context of its own (flask-wtf keeps the token in g)
            if client is other:
                login(other, ADMIN)
                with other.session_transaction() as session:
                    session["lang"] = "en"
            tokens.append(re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1))
    answers = []
    barrier = threading.Barrier(2)

    def click(client, token):
        with app.app_context():
            barrier.wait()
            answers.append(client.post(url, data={"csrf_token": token, "start": "credit"}, headers=HX))

    threads = [threading.Thread(target=click, args=(c, t)) for c, t in zip((staff, other), tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    texts = sorted(a.get_data(as_text=True) for a in answers)
    assert [a.status_code for a in answers] == [200, 200], texts
    assert any("Added to billing" in t for t in texts) and any("w_credit is in billing already" in t for t in texts)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Account).filter_by(login="w_credit")) == 1
    account = db.session.scalar(select(Account).filter_by(login="w_credit"))
    assert entries(account) == [("correction", due), ("charge", -due)] and account.contract.balance == 0


def test_the_packages_a_subscriber_has_come_along_and_start_the_same_way(staff, watching):
    """tv_sidorova watches Sport, optional in her plan 9002: does "+" keep it (a billing service,
    in the preview and credited with the fee), and does Stalker still show it after the sync?"""
    console.import_tariff(row_id("tariffs", "9002"), actor="test")
    directory.save_tariff({"monthly_fee": str(FEE)}, actor="test", tariff=db.session.get(Tariff, 9002))
    db.session.commit()
    due = rest_of_month(FEE) + rest_of_month(Decimal("149.00"))
    html = staff.get(f"/stalker/accounts/{row_id('accounts', '502')}/add", headers=HX).get_data(as_text=True)
    assert f"Спорт · {m(149)} a month" in html
    credit = option_html(html, "credit")
    assert f'<span class="credit"><span class="num">{m(due)}</span>' in credit and " checked" in credit
    assert f"{m(449)} a month from" in credit

    assert post(staff, f"/stalker/accounts/{row_id('accounts', '502')}/add", {}, headers=HX).status_code == 200
    db.session.expire_all()
    account = db.session.scalar(select(Account).filter_by(login="tv_sidorova"))
    assert sorted(s.service.external_id or "fee" for s in account.services) == ["fee", "pkg_sport"]
    assert sorted(entries(account)) == sorted([("correction", due), ("charge", -rest_of_month(FEE)),
                                               ("charge", -rest_of_month(Decimal("149.00")))])
    assert account.contract.balance == 0 and account.status == "active"
    assert reconcile_account("stalker", account.id) == "ok"
    user = watching.find(login="tv_sidorova")
    assert user["status"] == 1 and [watching.packages[p]["external_id"] for p in user["subscribed"]] == ["pkg_sport"]


def test_charging_now_takes_the_packages_with_the_fee_as_the_preview_said(staff, watching):
    """"Charge now" for tv_sidorova (fee and Sport): is the balance what the dialog showed, and is
    the account then blocked by balance, as the dialog warned?"""
    console.import_tariff(row_id("tariffs", "9002"), actor="test")
    directory.save_tariff({"monthly_fee": str(FEE)}, actor="test", tariff=db.session.get(Tariff, 9002))
    db.session.commit()
    due = rest_of_month(FEE) + rest_of_month(Decimal("149.00"))
    html = staff.get(f"/stalker/accounts/{row_id('accounts', '502')}/add", headers=HX).get_data(as_text=True)
    charge = option_html(html, "charge")
    assert f'<span class="balance-after"><span class="num neg">{m(-due)}</span>' in charge and "blocks" in charge
    post(staff, f"/stalker/accounts/{row_id('accounts', '502')}/add", {"start": "charge"}, headers=HX)
    db.session.expire_all()
    account = db.session.scalar(select(Account).filter_by(login="tv_sidorova"))
    assert account.contract.balance == -due and (account.status, account.reasons) == ("blocked", ["balance"])
