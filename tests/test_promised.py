"""Promised payments (обещанный платёж): a subscriber blocked by balance borrows money for a few
days; it lifts the block at once and is taken back when the days run out.

Dates are fixed with ``clock.as_of`` where the test calls billing itself; the tests over real
HTTP (parallel posts, the browser) run on today's date, whatever it is."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from jobs.promised import return_promised
from portal.billing import accounts as acc
from portal.billing import charging, clock, ledger, promised
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, Contract, LedgerEntry, OutboxEvent, PromisedPayment, PromisedRule
from tests.builders import gen_account, gen_agent, gen_contract, gen_staff, gen_subscriber, gen_tariff

CENT = Decimal("0.01")
PASSWORD = "cabinet-pass-1"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = Path("/tmp/promised-shots")


def part(price: str, days: int, dim: int) -> Decimal:
    """Monthly in advance for ``days`` of a month of ``dim`` days: price x days / dim, half-up."""
    return (Decimal(price) * days / dim).quantize(CENT, rounding=ROUND_HALF_UP)


def set_rule(**kw) -> PromisedRule:
    data = {"enabled": True, "amount_mode": "unblock", "max_amount": "1000", "days": "3", "per_month": "1",
            "fee": "10", "tariff_ids": []}
    data.update(kw)
    r = promised.save_rule(data, actor="test")
    db.session.commit()
    return r


def debtor(login="anna", price="300.00", tariff=None):
    """A cabinet subscriber whose account (on a webhook agent, so the outbox speaks) was activated
    without money: blocked by balance."""
    s = gen_subscriber(full_name=f"Абонент {login}", cabinet_login=login, cabinet_password=PASSWORD)
    c = gen_contract(s)
    a = gen_account(contract=c, tariff=tariff or gen_tariff([], monthly_fee=price, name=f"Домашний {login}"),
                    agent=gen_agent(platform="webhook"), login=login)
    return c, a


def keyed(contract_id: int, prefix: str) -> list[Decimal]:
    db.session.expire_all()
    return list(db.session.scalars(select(LedgerEntry.amount).where(
        LedgerEntry.contract_id == contract_id, LedgerEntry.idempotency_key.like(f"{prefix}:%"))))


def events(account_id: int, reason: str) -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.account_id == account_id, OutboxEvent.reason == reason))


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def blocked_since_august(login="anna"):
    """Activated on 10 August without money (blocked that day, August's rest charged); the
    1 September charge run finds it blocked and charges nothing for September."""
    with clock.as_of(date(2026, 8, 10)):
        c, a = debtor(login)
    with clock.as_of(date(2026, 9, 1)):
        charging.charge()
        db.session.commit()
    assert fresh(Account, a.id).reasons == ["balance"]
    return c.id, a.id


# -- taking and returning -------------------------------------------------------------------------

def test_a_promised_payment_lifts_the_block_and_its_return_blocks_again_when_no_money_came(ctx):
    """Blocked since August, I take a promised payment on 5 September: is my account active at
    once and does it stay so (the rest of September included), and when the 3 days are over
    is the whole amount taken back and the account blocked again?"""
    cid, aid = blocked_since_august()
    august = part("300.00", 22, 31)                 # 10..31 August, charged on activation
    assert fresh(Contract, cid).balance == -august
    set_rule(days="3", fee="10")
    september = part("300.00", 26, 30)              # 5..30 September, charged by the unblock
    expected = august + september + Decimal("10")    # up to the limit, what the unblock charges, the fee
    with clock.as_of(date(2026, 9, 5)):
        o = promised.offer(fresh(Contract, cid))
        assert (o.refusal, o.amount, o.fee, o.until, o.unblock_charge, o.balance_after) == \
            (None, expected, Decimal("10.00"), date(2026, 9, 8), september, Decimal("0.00"))
        unblocked_before = events(aid, "unblocked_by_balance")
        payment, created = promised.take(fresh(Contract, cid), actor="cabinet:anna", request_key="k1")
        db.session.commit()
    assert created and payment.status == "active" and payment.until == date(2026, 9, 8)
    account = fresh(Account, aid)
    assert (account.status, account.reasons) == ("active", [])
    assert events(aid, "unblocked_by_balance") == unblocked_before + 1  # the platforms hear of it
    assert keyed(cid, "promised") == [expected] and keyed(cid, "promised-fee") == [Decimal("-10.00")]
    credit = db.session.scalar(select(LedgerEntry).filter_by(idempotency_key=f"promised:{payment.id}"))
    assert (credit.kind, credit.comment) == ("correction", "promised payment until 08.09.2026")
    assert fresh(Contract, cid).balance == Decimal("0.00")

    with clock.as_of(date(2026, 9, 8)):             # its last day: still in force
        assert promised.return_due() == []
    blocked_before = events(aid, "blocked_by_balance")
    with clock.as_of(date(2026, 9, 9)):
        assert promised.return_due() == [payment.id]
        db.session.commit()
    assert keyed(cid, "promised-return") == [-expected]
    back = db.session.scalar(select(LedgerEntry).filter_by(idempotency_key=f"promised-return:{payment.id}"))
    assert back.comment == "promised payment returned"
    assert fresh(Contract, cid).balance == -expected
    assert fresh(Account, aid).reasons == ["balance"]
    assert events(aid, "blocked_by_balance") == blocked_before + 1
    assert fresh(PromisedPayment, payment.id).status == "returned"


def test_a_payment_that_came_meanwhile_keeps_the_account_active_after_the_return(ctx):
    """If I pay the promised amount before the days run out, does my account stay active when
    it is taken back (the payment simply counts in the balance)?"""
    cid, aid = blocked_since_august()
    set_rule(fee="0")
    with clock.as_of(date(2026, 9, 5)):
        payment, _ = promised.take(fresh(Contract, cid), actor="test")
        db.session.commit()
    with clock.as_of(date(2026, 9, 7)):
        ledger.payment(cid, payment.amount, actor="test", external_id="bank-1")
        db.session.commit()
    assert fresh(Contract, cid).balance == payment.amount
    with clock.as_of(date(2026, 9, 9)):
        promised.return_due()
        db.session.commit()
    assert fresh(Contract, cid).balance == Decimal("0.00")
    assert fresh(Account, aid).status == "active"


def test_a_double_take_gives_one_and_the_return_runs_once_twice_or_in_parallel(app, ctx):
    """A repeated form takes nothing more; the expiry job run twice, and by two workers at once,
    takes the money back once."""
    cid, aid = blocked_since_august()
    set_rule(fee="0")
    with clock.as_of(date(2026, 9, 5)):
        first, created = promised.take(fresh(Contract, cid), actor="test", request_key="same")
        db.session.commit()
        again, created_again = promised.take(fresh(Contract, cid), actor="test", request_key="same")
        db.session.commit()
    assert created and not created_again and again.id == first.id
    amount = first.amount
    barrier = threading.Barrier(2)

    def run() -> list[int]:
        with app.app_context(), clock.as_of(date(2026, 9, 9)):
            barrier.wait()
            done = promised.return_due()
            db.session.commit()
            db.session.remove()
            return done

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run(), range(2)))
    assert sorted(len(r) for r in results) == [0, 1]
    with clock.as_of(date(2026, 9, 10)):  # the scheduled job itself, once more
        assert return_promised() == {"returned": 0}
    assert keyed(cid, "promised-return") == [-amount]
    assert fresh(Contract, cid).balance == -amount


def test_the_job_returns_in_batches_until_none_is_due(ctx, monkeypatch):
    """Does the hourly job return every payment due, a batch per transaction?"""
    import jobs.promised

    cids = [blocked_since_august(login)[0] for login in ("anna", "boris", "vera")]
    set_rule(fee="0")
    with clock.as_of(date(2026, 9, 5)):
        for cid in cids:
            promised.take(fresh(Contract, cid), actor="test")
            db.session.commit()
    monkeypatch.setattr(jobs.promised, "BATCH", 2)
    with clock.as_of(date(2026, 9, 9)):
        assert return_promised() == {"returned": 3}
        assert return_promised() == {"returned": 0}
    assert [len(keyed(cid, "promised-return")) for cid in cids] == [1, 1, 1]


def test_four_workers_returning_at_once_take_each_payment_back_once_with_its_audit_and_outbox(app, ctx):
    """Six promised payments due at once, returned by four workers in parallel batches of two and
    then once more: is each taken back once (one debit, balances equal to the ledger), the
    accounts without new money blocked again (the platforms told), the one that paid meanwhile
    left active, and every return in the audit log?"""
    from portal.models import AuditEntry

    logins = ("anna", "boris", "vera", "gleb", "dina", "egor")
    made = [blocked_since_august(login) for login in logins]
    set_rule(fee="0")
    with clock.as_of(date(2026, 9, 5)):
        for cid, _aid in made:
            promised.take(fresh(Contract, cid), actor="test")
            db.session.commit()
    amounts = {cid: keyed(cid, "promised")[0] for cid, _aid in made}
    paid_cid = made[0][0]
    with clock.as_of(date(2026, 9, 7)):
        ledger.payment(paid_cid, amounts[paid_cid], actor="test", external_id="bank-7")
        db.session.commit()
    balances = {cid: fresh(Contract, cid).balance for cid, _aid in made}
    blocked_before = {aid: events(aid, "blocked_by_balance") for _cid, aid in made}
    db.session.rollback()
    barrier = threading.Barrier(4)

    def run() -> list[int]:
        returned = []
        with app.app_context(), clock.as_of(date(2026, 9, 9)):
            barrier.wait()
            while True:
                done = promised.return_due(limit=2)
                db.session.commit()
                returned += done
                if not done:
                    break
            db.session.remove()
        return returned

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(), range(4)))
    with clock.as_of(date(2026, 9, 9)):
        assert promised.return_due() == []
    all_returned = sorted(pid for r in results for pid in r)
    assert all_returned == sorted(db.session.scalars(select(PromisedPayment.id)))
    for cid, aid in made:
        assert keyed(cid, "promised-return") == [-amounts[cid]]
        contract = fresh(Contract, cid)
        assert contract.balance == balances[cid] - amounts[cid]
        assert contract.balance == sum(db.session.scalars(select(LedgerEntry.amount).filter_by(contract_id=cid)))
        if cid == paid_cid:
            assert fresh(Account, aid).status == "active"
        else:
            assert fresh(Account, aid).reasons == ["balance"]
            assert events(aid, "blocked_by_balance") == blocked_before[aid] + 1
    returns = list(db.session.scalars(select(AuditEntry).filter_by(action="promised.return")))
    assert sorted(e.after["promised_payment_id"] for e in returns) == all_returned
    assert {e.object_id for e in returns} == set(amounts)
    assert all(e.actor == "system" for e in returns)


# -- refusals -------------------------------------------------------------------------------------

def refusal(contract_id: int, day: date) -> str | None:
    with clock.as_of(day):
        try:
            promised.take(fresh(Contract, contract_id), actor="test")
        except BillingError as e:
            db.session.rollback()
            return e.fields["promised_payment"]
        db.session.commit()
        return None


def test_each_rule_refuses_with_its_reason(ctx):
    """Is a promised payment refused, with the reason, when the rules say no: off, another
    tariff, one in force, the month's limit, a manager's block, a disabled contract, a fine
    balance, over the maximum, a fixed amount too small?"""
    cid, aid = blocked_since_august()
    day = date(2026, 9, 5)
    assert refusal(cid, day) == promised.OFF
    other = gen_tariff([], name="Бизнес")
    set_rule(tariff_ids=[other.id], max_amount="600")
    assert refusal(cid, day) == promised.TARIFF
    set_rule(max_amount="400")  # every tariff; 212.90 + 260.00 + 10 is needed
    assert refusal(cid, day) == promised.OVER_MAX
    set_rule(amount_mode="fixed", amount="300", max_amount="")
    assert refusal(cid, day) == promised.TOO_SMALL
    own = fresh(Account, aid).tariff_id
    set_rule(tariff_ids=[own, other.id], max_amount="2000")
    assert refusal(cid, day) is None                 # now it is given
    assert refusal(cid, date(2026, 9, 6)) == promised.ACTIVE
    with clock.as_of(date(2026, 9, 9)):
        promised.return_due()
        db.session.commit()
    assert fresh(Account, aid).reasons == ["balance"]
    assert refusal(cid, date(2026, 9, 30)) == promised.MONTH_LIMIT  # one per month, in BILLING_TZ
    assert refusal(cid, date(2026, 10, 1)) is None                  # a new month
    with clock.as_of(date(2026, 10, 5)):
        promised.return_due()
        db.session.commit()
    with clock.as_of(date(2026, 11, 2)):
        acc.block(fresh(Account, aid), "manager", actor="test")
        db.session.commit()
    assert fresh(Account, aid).reasons == ["balance", "manager"]
    assert refusal(cid, date(2026, 11, 2)) == promised.MANAGER_BLOCK
    with clock.as_of(date(2026, 11, 2)):
        acc.disable(fresh(Account, aid), actor="test")
        db.session.commit()
    assert refusal(cid, date(2026, 11, 2)) == promised.DISABLED
    set_rule(max_amount="2000")  # every tariff again
    rich, _ = debtor("boris")
    ledger.payment(rich.id, Decimal("5000"), actor="test", external_id="rich")
    db.session.commit()
    assert refusal(rich.id, clock.today()) == promised.FINE
    assert db.session.scalar(select(func.count()).select_from(PromisedPayment)) == 2


def test_bad_rules_name_the_field_and_save_nothing(ctx):
    """Does a bad value in the rules form say which field is wrong, keeping the rules as they were?"""
    set_rule(days="5")
    bad = [({"days": "0"}, "days"), ({"days": "abc"}, "days"), ({"per_month": "40"}, "per_month"),
           ({"max_amount": "-5"}, "max_amount"), ({"max_amount": ""}, "max_amount"),
           ({"amount_mode": "fixed", "amount": ""}, "amount"), ({"amount_mode": "weekly"}, "amount_mode"),
           ({"fee": "1.234"}, "fee"), ({"fee": "2000"}, "fee"), ({"tariff_ids": [999999]}, "tariff_ids")]
    for change, field in bad:
        data = {"enabled": True, "amount_mode": "unblock", "max_amount": "1000", "days": "3", "per_month": "1",
                "fee": "10", "tariff_ids": [], **change}
        with pytest.raises(BillingError) as e:
            promised.save_rule(data, actor="test")
        db.session.rollback()
        assert field in e.value.fields, (change, e.value.fields)
    assert fresh(PromisedRule, 1).days == 5


# -- staff pages ----------------------------------------------------------------------------------

def staff_login(client, login_name: str):
    page = client.get("/login?lang=en").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"login": login_name, "password": "password123", "csrf_token": csrf})
    return re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def test_staff_set_the_rules_and_give_one_on_the_contract_page(app, client):
    """An admin sets the rules (a bad value is named); a manager sees the offer on the contract
    page and gives it; the page then shows it in force, and the ledger names the entries."""
    with app.app_context():
        gen_staff("boss", role="admin")
        gen_staff("mgr", role="manager")
        c, a = debtor()
        cid, aid, due = c.id, a.id, -c.balance
    csrf = staff_login(client, "boss")
    form = {"csrf_token": csrf, "enabled": "1", "amount_mode": "unblock", "max_amount": "1000", "days": "abc",
            "per_month": "1", "fee": "15"}
    r = client.post("/promised-payments", data=form)
    assert r.status_code == 422 and 'data-field="days"' in r.get_data(as_text=True)
    r = client.post("/promised-payments", data={**form, "days": "5"})
    assert r.status_code == 303
    client.post("/logout", data={"csrf_token": csrf})

    csrf = staff_login(client, "mgr")
    assert client.get("/promised-payments").status_code == 403    # the rules are the admin's
    html = client.get(f"/contracts/{cid}").get_data(as_text=True)
    amount = due + Decimal("15")
    assert f'data-amount="{amount}"' in html and 'data-balance-after="0.00"' in html
    nonce = re.search(r'id="promised".*?name="nonce" value="([^"]+)"', html, re.S).group(1)
    for _ in range(2):  # a double submit
        r = client.post(f"/contracts/{cid}/promised", data={"csrf_token": csrf, "nonce": nonce})
        assert r.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PromisedPayment)) == 1
        assert db.session.get(Account, aid).status == "active"
        until = db.session.scalar(select(PromisedPayment.until))
    html = client.get(f"/contracts/{cid}?lang=en").get_data(as_text=True)
    assert f'data-until="{until.isoformat()}"' in html
    assert "Promised payment until" in html and "Fee for a promised payment" in html
    assert "promised payment until" not in html  # billing's English comment gives way to the title
    r = client.post(f"/contracts/{cid}/promised", data={"csrf_token": csrf, "nonce": "another"})
    assert r.status_code == 422 and "in force already" in r.get_data(as_text=True)


# -- over real HTTP: parallel posts, the browser --------------------------------------------------

@pytest.fixture
def server(app, monkeypatch):
    """The app on a free port in a thread (the session cookie over plain HTTP)."""
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def cabinet_session(base: str, login: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{base}/cabinet/login?lang=en", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    s.post(f"{base}/cabinet/login", data={"login": login, "password": PASSWORD, "csrf_token": csrf}, timeout=10)
    return s


@pytest.mark.integration
def test_ten_parallel_takes_give_one_promised_payment(app, server):
    """Ten posts of one form at once (a double click gone wild), and ten forms from ten tabs at
    once: one promised payment each time, one credit, the block lifted once."""
    with app.app_context():
        set_rule(fee="0")
        (c1, _), (c2, _) = debtor("anna"), debtor("boris")
        ids = [c1.id, c2.id]
        dues = [-c1.balance, -c2.balance]
    for login, cid, tabs in (("anna", ids[0], False), ("boris", ids[1], True)):
        s = cabinet_session(server, login)
        home = s.get(f"{server}/cabinet/", timeout=10).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home).group(1)
        nonce = re.search(r'name="nonce" value="([^"]+)"', home).group(1)

        def post(i, s=s, cid=cid, csrf=csrf, nonce=nonce, tabs=tabs):
            data = {"csrf_token": csrf, "nonce": f"{nonce}{i}" if tabs else nonce}
            return s.post(f"{server}/cabinet/contracts/{cid}/promised", data=data, timeout=60,
                          allow_redirects=False).status_code

        with ThreadPoolExecutor(10) as pool:
            assert list(pool.map(post, range(10))) == [303] * 10
    with app.app_context():
        for cid, due in zip(ids, dues):
            assert db.session.scalar(select(func.count()).select_from(PromisedPayment)
                                     .where(PromisedPayment.contract_id == cid)) == 1
            assert keyed(cid, "promised") == [due]
            assert db.session.get(Contract, cid).balance == Decimal("0.00")
            assert db.session.scalar(select(Account.status).where(Account.contract_id == cid)) == "active"


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.mark.browser
def test_a_subscriber_takes_a_promised_payment_in_the_cabinet(app, server, chromium):
    """In Russian: the blocked subscriber opens «Взять обещанный платёж», reads the amount, the
    days, the fee, the last day and the balance after, confirms, and sees the account active
    and the promised payment in force until its day."""
    with app.app_context():
        set_rule(fee="25", days="5")
        c, a = debtor("anna")
        cid, aid, amount = c.id, a.id, -c.balance + Decimal("25")
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(f"{server}/cabinet/login?lang=ru")
        page.fill("input[name=login]", "anna")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        panel = page.locator(f"#promised-{cid}")
        panel.locator("summary").click()
        terms = panel.locator(".cab-promised-terms")
        assert terms.locator(f'[data-amount="{amount}"]').is_visible()
        text = terms.inner_text()
        assert "5 дней" in text and "включительно" in text and "25,00" in text
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "cabinet-offer.png"), full_page=True)
        panel.locator("button[type=submit]").click()
        page.wait_for_selector(f"#promised-{cid}[data-until]")
        assert "Обещанный платёж" in page.locator(f"#promised-{cid}").inner_text()
        assert page.locator(f"#account-{aid} .badge-active").count() == 1
        page.screenshot(path=str(SHOTS / "cabinet-taken.png"), full_page=True)
        page.goto(f"{server}/cabinet/contracts/{cid}")
        assert "Обещанный платёж до" in page.locator("#ledger-rows").inner_text()
        page.screenshot(path=str(SHOTS / "cabinet-ledger.png"), full_page=True)
    finally:
        context.close()
    with app.app_context():
        assert db.session.get(Account, aid).status == "active"
