"""The subscriber card, the contract page and the account page: what staff do there."""
from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, AuditEntry, Contract, LedgerEntry, Subscriber
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_staff, gen_tariff
from tests.helpers import HX, field_error, login, post
from tests.helpers import page_token as token
from tests.platform_fixtures import wait_for


def balance(contract_id: int) -> Decimal:
    db.session.rollback()
    return db.session.get(Contract, contract_id).balance


def test_payment_on_the_contract_page_moves_money_once(app, client, ctx):
    """A manager takes 500 ₽: the balance and the ledger show it; a double click posts it once."""
    gen_staff("mgr", role="manager")
    c = gen_contract()
    cid = c.id
    login(client, "mgr")
    page = client.get(f"/contracts/{cid}").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([0-9a-f]+)"', page).group(1)
    data = {"amount": "500.00", "comment": "касса", "nonce": nonce}
    r = post(client, f"/contracts/{cid}/payments", data, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "500,00" in html and "касса" in html
    post(client, f"/contracts/{cid}/payments", data)  # the same form submitted again
    assert balance(cid) == Decimal("500.00")
    entries = db.session.scalars(select(LedgerEntry).filter_by(contract_id=cid)).all()
    assert [(e.kind, e.amount, e.author) for e in entries] == [("payment", Decimal("500.00"), "staff:mgr")]


def test_a_bad_amount_names_the_field_and_moves_nothing(app, client, ctx):
    """Typing «12,5,0» as the amount shows an error beside the amount; no money moves."""
    gen_staff("mgr", role="manager")
    cid = gen_contract().id
    login(client, "mgr")
    r = post(client, f"/contracts/{cid}/payments", {"amount": "12,5,0", "nonce": "n1"})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert field_error(html, "amount") and 'value="12,5,0"' in html  # the typed value is kept
    assert balance(cid) == 0
    r = post(client, f"/contracts/{cid}/corrections", {"amount": "-10", "comment": "", "nonce": "n2"})
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "comment")
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_ledger_shows_the_running_balance_across_pages(app, client, ctx):
    """Each ledger row shows the balance right after it, also on the "Show more" page."""
    gen_staff("op", role="viewer")
    c = gen_contract()
    from portal.billing import ledger
    for i in range(1, 56):
        ledger.post(c.id, "correction", Decimal(i), actor="t", comment=f"c{i}")
    db.session.commit()
    cid = c.id
    login(client, "op")
    page = client.get(f"/contracts/{cid}").get_data(as_text=True)
    # newest first: +55 leaves 1540 (= 1+..+55), the one before leaves 1485
    pairs = re.findall(r'<td class="num"><span class="num">([^<]+)</span></td>'
                       r'<td class="num"><span class="num">([^<]+)<',
                       page.replace("\xa0", " "))
    assert pairs[:2] == [("55,00 ₽", "1 540,00 ₽"), ("54,00 ₽", "1 485,00 ₽")]  # Babel's ru format
    more = re.search(r'hx-get="(/contracts/\d+\?before=\d+)"', page).group(1)
    rest = client.get(more, headers=HX).get_data(as_text=True)
    assert "<html" not in rest and "c5<" in rest and "c6<" not in rest.split("c5<")[1]


def test_block_and_unblock_from_the_account_page(app, client, ctx):
    """A manager blocks an account and lifts the block; both are in the account's history."""
    gen_staff("mgr", role="manager")
    a = gen_account(login="ivanov")
    aid = a.id
    login(client, "mgr")
    r = post(client, f"/accounts/{aid}/block", {}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert 'badge-blocked' in html and "Unblock" in html or "Разблокировать" in html
    db.session.rollback()
    assert db.session.get(Account, aid).reasons == ["manager"]
    post(client, f"/accounts/{aid}/unblock", {})
    db.session.rollback()
    assert db.session.get(Account, aid).status == "active"
    history = client.get(f"/accounts/{aid}").get_data(as_text=True)
    assert "account.block" in history and "account.unblock" in history and "staff:mgr" in history


def test_a_balance_block_cannot_be_lifted_by_a_manager_and_says_how_much_to_pay(app, client, ctx):
    """An account blocked by balance says what payment lifts it; «unblock» is not offered."""
    gen_staff("mgr", role="manager")
    tv = gen_service("300.00")
    a = gen_account(services=[tv], login="debtor")
    aid = a.id
    db.session.rollback()
    assert db.session.get(Account, aid).reasons == ["balance"]
    login(client, "mgr")
    owed = str(-balance(a.contract_id)).replace(".", ",")  # this month's days of 300 ₽, charged in advance
    html = client.get(f"/accounts/{aid}").get_data(as_text=True).replace("\xa0", " ")
    assert re.search(rf'class="flash flash-error">[^<]*{owed} ₽', html)
    assert f"/accounts/{aid}/unblock" not in html
    r = post(client, f"/accounts/{aid}/unblock", {})
    assert r.status_code == 422 and "flash-error" in r.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Account, aid).reasons == ["balance"]


def test_viewer_sees_but_cannot_act(app, client, ctx):
    """A viewer opens the account but gets the 403 page when trying to block it."""
    gen_staff("look", role="viewer")
    a = gen_account()
    aid = a.id
    login(client, "look")
    html = client.get(f"/accounts/{aid}").get_data(as_text=True)
    assert a.login in html and f"/accounts/{aid}/block" not in html
    r = post(client, f"/accounts/{aid}/block", {})
    assert r.status_code == 403
    db.session.rollback()
    assert db.session.get(Account, aid).status == "active"


def test_new_subscriber_then_account_from_the_card(app, client, ctx):
    """A new card comes with a contract; a new account with a taken login names the login field."""
    gen_staff("mgr", role="manager")
    agent = gen_agent(name="RADIUS")
    tariff = gen_tariff(name="Домашний", monthly_fee="500")
    gen_account(login="taken")
    login(client, "mgr")
    r = post(client, "/subscribers/new", {"full_name": "", "kind": "person"})
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "full_name")
    assert db.session.scalar(select(func.count()).select_from(Subscriber).filter_by(full_name="")) == 0
    r = post(client, "/subscribers/new", {"full_name": "Орлов Олег", "kind": "person", "phones": "+7 900 1"})
    assert r.status_code == 303
    card = client.get(r.headers["Location"]).get_data(as_text=True)
    sub = db.session.scalar(select(Subscriber).filter_by(full_name="Орлов Олег"))
    [contract] = sub.contracts
    assert contract.number in card
    data = {"contract_id": str(contract.id), "login": "taken", "agent_id": str(agent.id),
            "tariff_id": str(tariff.id), "house": "ул. Ленина, 1", "flat": "5"}
    r = post(client, f"/subscribers/{sub.id}/accounts", data)
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "login")
    r = post(client, f"/subscribers/{sub.id}/accounts", {**data, "login": "orlov"})
    assert r.status_code == 303 and "/accounts/" in r.headers["Location"]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "orlov" in page and "badge-inactive" in page and "Домашний" in page


def test_a_foreign_contract_in_the_account_form_is_refused(app, client, ctx):
    """The account form on one card cannot put an account on another subscriber's contract."""
    gen_staff("mgr", role="manager")
    agent = gen_agent()
    mine, other = gen_contract(), gen_contract()
    login(client, "mgr")
    r = post(client, f"/subscribers/{mine.subscriber_id}/accounts",
             {"contract_id": str(other.id), "login": "sneaky", "agent_id": str(agent.id)})
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "contract_id")
    assert db.session.scalar(select(func.count()).select_from(Account).filter_by(login="sneaky")) == 0


def test_assign_suspend_and_end_a_service(app, client, ctx):
    """On the account page a manager assigns an offered service, suspends it and ends it."""
    gen_staff("mgr", role="manager")
    tv, extra = gen_service("100.00", name="ТВ"), gen_service("50.00", name="Кино")
    a = gen_account(tariff=gen_tariff([tv, extra]))
    aid = a.id
    login(client, "mgr")
    r = post(client, f"/accounts/{aid}/services", {"service_id": str(extra.id), "ends_on": "2001-01-01"})
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "ends_on")
    r = post(client, f"/accounts/{aid}/services", {"service_id": str(extra.id)}, follow_redirects=True)
    assert 'data-service="Кино"' in r.get_data(as_text=True)
    db.session.rollback()
    [assigned] = db.session.get(Account, aid).services
    post(client, f"/assigned-services/{assigned.id}/suspend", {})
    db.session.rollback()
    assert db.session.get(Account, aid).services[0].state == "suspended"
    post(client, f"/assigned-services/{assigned.id}/end", {})
    db.session.rollback()
    assert db.session.get(Account, aid).services[0].state == "ended"
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "staff:mgr")))
    assert {"service.assign", "service.suspend", "service.end"} <= actions


def test_raising_the_credit_limit_lifts_a_balance_block(app, client, ctx):
    """Giving a debtor 1000 ₽ of credit on the contract page unblocks their account at once."""
    gen_staff("mgr", role="manager")
    a = gen_account(services=[gen_service("300.00")])
    aid, cid = a.id, a.contract_id
    login(client, "mgr")
    post(client, f"/contracts/{cid}/settings", {"credit_limit": "1000"})
    db.session.rollback()
    assert db.session.get(Account, aid).status == "active"
    assert db.session.get(Contract, cid).credit_limit == Decimal("1000")


def test_sync_now_shows_progress_until_the_worker_is_done(app, client, ctx, webhook, processes):
    """«Sync now» shows a progress row that polls; when the worker is done the panel says in sync."""
    gen_staff("mgr", role="manager")
    a = gen_account(agent=gen_agent(platform="webhook"), login="synced")
    aid = a.id
    login(client, "mgr")
    r = client.post(f"/accounts/{aid}/sync", headers={**HX, "X-CSRFToken": token(client)})
    panel = r.get_data(as_text=True)
    assert "spinner" in panel and "load delay:1s" in panel and "toast" in r.headers["HX-Trigger"]
    processes.start("jobs.worker")
    wait_for(lambda: "badge-ok" in client.get(f"/accounts/{aid}/sync-panel").get_data(as_text=True), what="in sync")
    done = client.get(f"/accounts/{aid}/sync-panel").get_data(as_text=True)
    assert "spinner" not in done and "hx-trigger" not in done.split("</section>")[0].split(">")[0]
    assert webhook.states["synced"]["present"] is True


def test_a_form_without_the_csrf_token_is_refused(app, client, ctx):
    """A forged request from another site (no CSRF token) cannot take a payment."""
    gen_staff("mgr", role="manager")
    cid = gen_contract().id
    login(client, "mgr")
    r = client.post(f"/contracts/{cid}/payments", data={"amount": "100", "nonce": "x"})
    assert r.status_code == 400
    assert balance(cid) == 0
