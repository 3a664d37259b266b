"""Online payment from the cabinet through ЮKassa (its emulator over real HTTP, the portal live):
one credit whatever the order of webhook and return, forged and replayed notifications move
nothing, cancel, staff re-check, shop settings, the secret never shown."""
from __future__ import annotations

import logging
import re
import time
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select, text

from portal.billing import blocking
from portal.billing import online_payments as op
from portal.extensions import db
from portal.models import Account, AuditEntry, Contract, LedgerEntry, OnlinePayment, OnlineShop
from tests.builders import gen_staff
from tests.yookassa_fixtures import PASSWORD, SECRET, SHOP_ID, debtor, set_shop


def cabinet(base: str, login: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{base}/cabinet/login?lang=en", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    s.post(f"{base}/cabinet/login", data={"login": login, "password": PASSWORD, "csrf_token": csrf}, timeout=10)
    return s


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def staff_session(base: str, login: str = "boss") -> requests.Session:
    """A staff member logged in over HTTP (English pages)."""
    s = requests.Session()
    page = s.get(f"{base}/login?lang=en", timeout=10).text
    s.post(f"{base}/login", data={"login": login, "password": "password123", "csrf_token": csrf_of(page)}, timeout=10)
    return s


def shop_debtor_and_staff(app, server, emu) -> tuple[int, requests.Session]:
    """The shop set up, Анна's blocked contract (its id) with her cabinet logged in, and an admin
    "boss" to log in as."""
    with app.app_context():
        set_shop(emu)
        c, _a = debtor()
        cid = c.id
        gen_staff("boss", role="admin")
    return cid, cabinet(server, "anna")


def start_paying(s, base, contract_id, amount=None):
    """The cabinet's form as the subscriber sends it; returns (the prefilled amount, the
    service's payment page URL)."""
    home = s.get(f"{base}/cabinet/", timeout=10).text
    prefilled = re.search(rf'id="pay-{contract_id}".*?name="amount"[^>]*value="([^"]+)"', home, re.S).group(1)
    r = s.post(f"{base}/cabinet/contracts/{contract_id}/pay", allow_redirects=False, timeout=30,
               data={"amount": amount or prefilled, "csrf_token": csrf_of(home), "back": "home"})
    return prefilled, r


def service_page(s, base, r) -> str:
    """The service's payment page the cabinet sends the payer on to (from our …/go page)."""
    assert r.status_code == 303 and r.headers["Location"].endswith("/go")
    go = s.get(base + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"],
               timeout=10).text
    url = re.search(r'id="to-service" href="([^"]+)"', go).group(1)
    assert f'http-equiv="refresh" content="0;url={url}"' in go
    return url


def press(s, url, action):
    """A button on the service's page; the browser then follows the redirect to the return page."""
    return s.post(url, data={"action": action}, timeout=30)


def credits(contract_id):
    db.session.expire_all()
    return list(db.session.scalars(select(LedgerEntry.amount).where(
        LedgerEntry.contract_id == contract_id, LedgerEntry.idempotency_key.like("yookassa:%"))))


@pytest.mark.integration
def test_paying_the_prefilled_amount_lifts_the_block_once_webhook_after_return(app, server, emu):
    """The blocked subscriber pays what the cabinet offers: the service's page, «Оплатить»,
    back to the portal: credited once, the block lifted; the late notification moves nothing."""
    with app.app_context():
        set_shop(emu)
        c, a = debtor()
        due = blocking.top_up_to_unblock(c)
        cid, aid, before = c.id, a.id, c.balance
    assert due > 0
    s = cabinet(server, "anna")
    prefilled, r = start_paying(s, server, cid)
    assert Decimal(prefilled) == due
    url = service_page(s, server, r)
    assert url.startswith(emu.base_url + "/pay/")
    (payment_id, remote), = emu.payments.items()
    assert remote["amount"] == {"value": str(due), "currency": "RUB"}
    # the receipt went with it: the subscriber's e-mail, one item with the shop's VAT code
    receipt = emu.receipts[payment_id]
    assert receipt["customer"] == {"email": "anna@example.ru"}
    assert receipt["items"][0]["vat_code"] == 4 and receipt["items"][0]["amount"]["value"] == str(due)
    back = press(s, url, "pay")
    assert back.url.startswith(f"{server}/cabinet/online-payments/")
    assert 'data-state="succeeded"' in back.text
    assert emu.send(payment_id) == 200  # the notification after the return
    assert emu.send(payment_id) == 200  # and ЮKassa sending it again
    with app.app_context():
        assert credits(cid) == [due]
        assert db.session.get(Account, aid).status == "active"
        assert db.session.get(Contract, cid).balance == before + due
        p = db.session.scalar(select(OnlinePayment))
        assert p.state == "succeeded" and p.ledger_entry_id is not None


@pytest.mark.integration
def test_webhook_before_the_return_credits_once(app, server, emu):
    """The notification arrives first (the payer is slow to come back): it credits; the return
    page reads the payment back and shows it paid without a second credit."""
    with app.app_context():
        set_shop(emu)
        c, _a = debtor()
        cid = c.id
    s = cabinet(server, "anna")
    _prefilled, r = start_paying(s, server, cid, "500.00")
    (payment_id, remote), = emu.payments.items()
    emu.finish(payment_id, "succeeded")        # paid at the service, the payer not back yet
    assert emu.send(payment_id) == 200
    with app.app_context():
        assert credits(cid) == [Decimal("500.00")]
        local_id = db.session.scalar(select(OnlinePayment.id))
    page = s.get(f"{server}/cabinet/online-payments/{local_id}", timeout=10)
    assert 'data-state="succeeded"' in page.text
    with app.app_context():
        assert credits(cid) == [Decimal("500.00")]


@pytest.mark.integration
def test_forged_and_replayed_notifications_move_nothing(app, server, emu):
    """A notification for an id the service never issued, one claiming success for a payment
    the API says is pending, and one with a doctored amount: nothing credited. A replay of a real
    one after the credit: nothing more."""
    with app.app_context():
        set_shop(emu)
        c, _a = debtor()
        cid = c.id
    s = cabinet(server, "anna")
    start_paying(s, server, cid, "300.00")
    (payment_id, remote), = emu.payments.items()
    forged = {**remote, "id": "2419a771-000f-5000-9000-1edaf29243f2", "status": "succeeded", "paid": True}
    assert emu.send(None, "payment.succeeded", forged) == 200
    pending_claimed = {**remote, "status": "succeeded", "paid": True, "amount": {"value": "9000.00", "currency": "RUB"}}
    assert emu.send(None, "payment.succeeded", pending_claimed) == 200
    bad = requests.post(f"{server}/pay/yookassa/notify", data="not json", timeout=10)
    assert bad.status_code == 400
    with app.app_context():
        assert credits(cid) == []
        assert db.session.scalar(select(OnlinePayment.state)) == "pending"
    emu.finish(payment_id, "succeeded")
    for _ in range(3):
        assert emu.send(payment_id) == 200
    with app.app_context():
        assert credits(cid) == [Decimal("300.00")]


@pytest.mark.integration
def test_cancel_credits_nothing_and_shows_canceled(app, server, emu):
    """«Отменить» on the service's page: back in the cabinet the payment reads canceled; nothing
    credited, the account still blocked."""
    with app.app_context():
        set_shop(emu)
        c, a = debtor()
        cid, aid = c.id, a.id
    s = cabinet(server, "anna")
    _p, r = start_paying(s, server, cid)
    back = press(s, service_page(s, server, r), "cancel")
    assert 'data-state="canceled"' in back.text and "canceled" in back.text
    # the service's reason (expired_on_confirmation) in words, not its code
    assert "Reason: the payment was not confirmed in time." in back.text and "expired_on" not in back.text
    (payment_id, _remote), = emu.payments.items()
    assert emu.send(payment_id) == 200
    with app.app_context():
        assert credits(cid) == []
        assert db.session.get(Account, aid).status != "active"
        local_id = db.session.scalar(select(OnlinePayment.id))
    ru = s.get(f"{server}/cabinet/online-payments/{local_id}?lang=ru", timeout=10).text
    assert "Причина: платёж не подтверждён вовремя." in ru


@pytest.mark.integration
def test_staff_read_why_a_payment_was_cancelled_and_an_unknown_reason_as_it_came(app, server, emu):
    """A bank's decline (insufficient_funds) reads in words on the staff list; a reason code the
    portal does not know yet is shown as ЮKassa sent it, not dropped."""
    cid, s = shop_debtor_and_staff(app, server, emu)
    for reason in ("insufficient_funds", "brand_new_reason"):
        _p, r = start_paying(s, server, cid, "100")
        service_page(s, server, r)
        payment_id = next(k for k, v in emu.payments.items() if v["status"] == "pending")
        emu.finish(payment_id, "canceled", reason=reason, party="payment_network")
        assert emu.send(payment_id) == 200
    staff = staff_session(server)
    page = staff.get(f"{server}/online-payments", timeout=10).text
    assert '<td class="small">not enough money on the card or wallet</td>' in page and "insufficient_funds" not in page
    assert '<td class="small">brand_new_reason</td>' in page


@pytest.mark.integration
def test_pending_then_success_is_credited_by_the_late_notification(app, server, emu):
    """«Ожидание, затем успех»: the return page says not yet confirmed; a moment later the
    service's notification credits it."""
    with app.app_context():
        set_shop(emu)
        c, _a = debtor()
        cid = c.id
    emu.notify, emu.pending_seconds = True, 1.0
    s = cabinet(server, "anna")
    _p, r = start_paying(s, server, cid, "400")
    back = press(s, service_page(s, server, r), "wait")
    assert 'data-state="pending"' in back.text
    deadline = time.monotonic() + 15
    with app.app_context():
        while not credits(cid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert credits(cid) == [Decimal("400.00")]


@pytest.mark.integration
def test_bad_amount_and_service_down(app, server, emu):
    """An amount outside the shop's limits is refused with the field named; with the service
    down the subscriber reads so, and the payment is kept as not created, nothing credited."""
    with app.app_context():
        set_shop(emu, min_sum="50", max_sum="1000")
        c, _a = debtor()
        cid = c.id
    s = cabinet(server, "anna")
    _p, r = start_paying(s, server, cid, "5000")
    assert r.status_code == 303 and "/cabinet/" in r.headers["Location"]
    page = s.get(server + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"],
                 timeout=10).text
    assert "above the maximum sum for online payment" in page
    assert not emu.payments
    emu.down()
    _p, r = start_paying(s, server, cid, "100")
    assert r.status_code == 303
    page = s.get(server + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"],
                 timeout=10).text
    assert "not answering" in page
    with app.app_context():
        assert db.session.scalar(select(OnlinePayment.state)) == "failed"
        assert credits(cid) == []


@pytest.mark.integration
def test_idempotence_key_at_the_emulator(emu):
    """The emulator answers as ЮKassa: the same key and body, the same payment; another body
    with that key, 400; wrong credentials, 401."""
    body = {"amount": {"value": "100.00", "currency": "RUB"}, "capture": True,
            "confirmation": {"type": "redirect", "return_url": "http://x/"}}
    h = {"Idempotence-Key": "k-1"}
    first = requests.post(f"{emu.api_url}/payments", json=body, headers=h, auth=(SHOP_ID, SECRET), timeout=10)
    again = requests.post(f"{emu.api_url}/payments", json=body, headers=h, auth=(SHOP_ID, SECRET), timeout=10)
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    other = requests.post(f"{emu.api_url}/payments", json={**body, "amount": {"value": "101.00", "currency": "RUB"}},
                          headers=h, auth=(SHOP_ID, SECRET), timeout=10)
    assert other.status_code == 400 and other.json()["code"] == "invalid_request"
    assert requests.post(f"{emu.api_url}/payments", json=body, headers={"Idempotence-Key": "k-2"},
                         auth=(SHOP_ID, "wrong"), timeout=10).status_code == 401
    assert len(emu.payments) == 1


@pytest.mark.integration
def test_staff_recheck_credits_a_paid_payment_whose_notification_never_came(app, server, emu, caplog):
    """The payer paid and closed the tab, the notification was lost: staff press «Re-check» and
    the payment is credited, once. The shop's page never shows the secret key, nor do the audit
    log or the log records."""
    caplog.set_level(logging.DEBUG)
    cid, s = shop_debtor_and_staff(app, server, emu)
    start_paying(s, server, cid, "250.00")
    (payment_id, _remote), = emu.payments.items()
    emu.finish(payment_id, "succeeded")
    staff = staff_session(server)
    listing = staff.get(f"{server}/online-payments", timeout=10).text
    assert payment_id in listing and 'data-state="pending"' in listing
    with app.app_context():
        local_id = db.session.scalar(select(OnlinePayment.id))
    for _ in range(2):
        r = staff.post(f"{server}/online-payments/{local_id}/recheck", data={"csrf_token": csrf_of(listing)},
                       timeout=30)
        assert r.status_code == 200
    assert 'data-state="succeeded"' in r.text
    with app.app_context():
        assert credits(cid) == [Decimal("250.00")]
    shop_page = staff.get(f"{server}/online-payments/shop", timeout=10).text
    assert SHOP_ID in shop_page and SECRET not in shop_page
    # saving without a secret keeps the stored one
    r = staff.post(f"{server}/online-payments/shop", timeout=10, data={
        "csrf_token": csrf_of(shop_page), "api_url": emu.api_url, "shop_id": SHOP_ID, "secret": "", "vat_code": "1",
        "payment_subject": "service", "payment_mode": "full_prepayment", "min_sum": "10", "max_sum": "15000",
        "timeout": "5", "receipt": "y", "enabled": "y"})
    assert r.status_code == 200 and SECRET not in r.text
    with app.app_context():
        shop = db.session.scalar(select(OnlineShop))
        assert shop.vat_code == 1 and SECRET not in shop.secret_enc
        from portal.billing.crypto import decrypt
        assert decrypt(shop.secret_enc) == SECRET
        audit_text = " ".join(f"{e.summary} {e.before} {e.after}" for e in db.session.scalars(select(AuditEntry)))
        assert SECRET not in audit_text and SHOP_ID not in audit_text
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "platform.call")) >= 3
    assert SECRET not in caplog.text and SHOP_ID not in caplog.text


@pytest.mark.integration
def test_the_shop_row_holds_no_plain_shop_id_and_payments_log_in_with_the_stored_one(app, server, emu):
    """A database dump names no shop: is the shop id, like the secret key, in the row only
    encrypted, while admins still see it in the form, and is the stored id what the service
    gets (a wrong one refused, the one an admin corrects it to accepted)?"""
    wrong = "777001"
    with app.app_context():
        set_shop(emu, shop_id=wrong)
        c, _a = debtor()
        cid = c.id
        gen_staff("boss", role="admin")

    def stored_row() -> str:
        with app.app_context():
            return " ".join(str(v) for v in db.session.execute(text("SELECT * FROM online_shops")).one())

    assert not any(plain in stored_row() for plain in (wrong, SHOP_ID, SECRET))
    s = cabinet(server, "anna")
    _p, r = start_paying(s, server, cid, "100")
    page = s.get(server + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"],
                 timeout=10).text
    assert "not answering" in page and not emu.payments  # ЮKassa refused shop 777001's login
    staff = staff_session(server)
    shop_page = staff.get(f"{server}/online-payments/shop", timeout=10).text
    assert f'value="{wrong}"' in shop_page and SECRET not in shop_page
    r = staff.post(f"{server}/online-payments/shop", timeout=10, data={
        "csrf_token": csrf_of(shop_page), "api_url": emu.api_url, "shop_id": SHOP_ID, "secret": "", "vat_code": "4",
        "payment_subject": "service", "payment_mode": "full_prepayment", "min_sum": "10", "max_sum": "15000",
        "timeout": "5", "receipt": "y", "enabled": "y"})
    assert r.status_code == 200 and f'value="{SHOP_ID}"' in r.text
    assert not any(plain in stored_row() for plain in (wrong, SHOP_ID, SECRET))
    _p, r = start_paying(s, server, cid, "100")
    service_page(s, server, r)
    assert len(emu.payments) == 1


@pytest.mark.integration
def test_another_subscribers_payment_is_a_404(app, server, emu):
    """A subscriber cannot open another's return page nor pay into another's contract."""
    with app.app_context():
        set_shop(emu)
        c1, _ = debtor("anna")
        c2, _ = debtor("boris")
        cid1, cid2 = c1.id, c2.id
    s = cabinet(server, "anna")
    start_paying(s, server, cid1, "100")
    with app.app_context():
        local_id = db.session.scalar(select(OnlinePayment.id))
    b = cabinet(server, "boris")
    assert b.get(f"{server}/cabinet/online-payments/{local_id}", timeout=10).status_code == 404
    home = b.get(f"{server}/cabinet/", timeout=10).text
    r = b.post(f"{server}/cabinet/contracts/{cid1}/pay", data={"amount": "100", "csrf_token": csrf_of(home)},
               allow_redirects=False, timeout=10)
    assert r.status_code == 404 and cid2


@pytest.mark.integration
def test_parallel_notifications_and_return_credit_once(app, server, emu):
    """Ten copies of the notification and the payer's return, all at once: one credit."""
    from concurrent.futures import ThreadPoolExecutor

    with app.app_context():
        set_shop(emu)
        c, _a = debtor()
        cid = c.id
    s = cabinet(server, "anna")
    start_paying(s, server, cid, "700.00")
    (payment_id, _remote), = emu.payments.items()
    emu.finish(payment_id, "succeeded")
    with app.app_context():
        local_id = db.session.scalar(select(OnlinePayment.id))
    with ThreadPoolExecutor(11) as pool:
        sent = [pool.submit(emu.send, payment_id) for _ in range(10)]
        back = pool.submit(s.get, f"{server}/cabinet/online-payments/{local_id}", timeout=30)
        assert [f.result() for f in sent] == [200] * 10
        assert 'data-state="succeeded"' in back.result().text
    with app.app_context():
        assert credits(cid) == [Decimal("700.00")]


def test_make_run_demo_points_the_demo_shop_at_its_emulator_and_leaves_a_real_shop_alone(app, emu):
    """`make run`: a fresh database gets the demo shop on the local emulator; a shop staff set up
    (not marked as the demo's) is not touched."""
    from portal.payments.yookassa import demo

    with app.app_context():
        started = demo.start("http://127.0.0.1:5999")
        try:
            shop = op.shop()
            assert shop.demo_emulator and shop.api_url == started.api_url and op.shop_id_of(shop) == demo.DEMO_SHOP_ID
            assert started.webhook_url == "http://127.0.0.1:5999/pay/yookassa/notify"
        finally:
            started.stop()
        set_shop(emu)  # staff's own shop
        assert demo.start("http://127.0.0.1:5999") is None
        assert op.shop().api_url == emu.api_url and not op.shop().demo_emulator


@pytest.mark.integration
def test_a_slow_service_and_a_payment_that_is_not_ours_credit_nothing(app, server, emu):
    """The service answering later than the shop's timeout: the subscriber is told, nothing is
    credited. A payment the API reports succeeded but for another amount or without our metadata:
    kept with the reason for staff, nothing credited."""
    with app.app_context():
        set_shop(emu, timeout="1")
        c, _a = debtor()
        cid = c.id
    s = cabinet(server, "anna")
    emu.latency = 2.5
    _p, r = start_paying(s, server, cid, "100")
    page = s.get(server + r.headers["Location"], timeout=10).text
    assert "not answering" in page
    emu.heal()
    time.sleep(2)  # the late create has finished at the emulator
    with app.app_context():
        assert db.session.scalar(select(OnlinePayment.state)) == "failed"
    start_paying(s, server, cid, "200.00")
    start_paying(s, server, cid, "300.00")
    with app.app_context():
        ours = {p.amount: p.payment_id for p in db.session.scalars(select(OnlinePayment)) if p.payment_id}
    first, second = ours[Decimal("200.00")], ours[Decimal("300.00")]
    emu.payments[first]["amount"] = {"value": "20000.00", "currency": "RUB"}
    emu.payments[second]["metadata"] = {"online_payment_id": "999", "contract_id": str(cid)}
    for payment_id in (first, second):
        emu.finish(payment_id, "succeeded")
        assert emu.send(payment_id) == 200
    with app.app_context():
        assert credits(cid) == []
        notes = {p.payment_id: p.error for p in db.session.scalars(select(OnlinePayment)) if p.payment_id}
        assert "20000.00" in notes[first] and "metadata" in notes[second]


@pytest.mark.integration
def test_with_public_url_the_service_is_given_the_public_addresses(app, server, emu, monkeypatch):
    """Behind a proxy the portal may be reached at an internal address (here 127.0.0.1): with
    PUBLIC_URL set, the page ЮKassa returns the payer to, and the notification URL staff are
    told to give ЮKassa, are on the public address, not on the one the request came in by."""
    public = "https://my.isp.example/portal"
    monkeypatch.setitem(app.config, "PUBLIC_URL", public)
    cid, s = shop_debtor_and_staff(app, server, emu)
    start_paying(s, server, cid, "100")
    with app.app_context():
        local_id = db.session.scalar(select(OnlinePayment.id))
    (sent,) = emu.payments.values()
    assert sent["confirmation"]["return_url"] == f"{public}/cabinet/online-payments/{local_id}"
    staff = staff_session(server)
    shop_page = staff.get(f"{server}/online-payments/shop", timeout=10).text
    assert f'<code id="webhook-url">{public}/pay/yookassa/notify</code>' in shop_page
    assert server not in shop_page
