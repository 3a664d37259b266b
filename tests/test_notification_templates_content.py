"""What the messages say, read where they arrive (issue 19, notification content): a notice is
recorded as billing records it, ``delivery.prepare`` renders it, ``delivery.deliver`` sends it to
the real SMTP server and the SMS / Telegram emulators, and the test reads what came.

* a free item reads as free ("бесплатно" / "free of charge", or no fee line), never "0,00 ₽";
* low-balance, block and promised-payment messages carry an absolute link to the cabinet's
  payment page on PUBLIC_URL, which opens the pay form with what lifts the block; none without
  PUBLIC_URL or online payment;
* an admin's edit of a template is what the next message says (the compiled templates kept per
  process are keyed by their text)."""
from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from babel.numbers import format_currency
from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import ledger, notices
from portal.billing import online_payments as op
from portal.extensions import db
from portal.models import NOTICE_EVENTS, Notice, NotificationDelivery
from portal.notifications import delivery, preferences, templates
from tests.builders import gen_account, gen_contract, gen_service, gen_subscriber, gen_tariff
from tests.helpers import cabinet_login, post, staff_in_english
from tests.yookassa_fixtures import SECRET, SHOP_ID, debtor

pytestmark = pytest.mark.integration

BASE = "https://my.isp.test/portal"


def money(amount, locale="ru") -> str:
    return format_currency(Decimal(amount), "RUB", locale=locale)


def zero_in(text: str, locale="ru") -> bool:
    """Does the text print a zero amount ("0,00 ₽", not the end of "300,00 ₽")?"""
    return re.search(r"(?<!\d)" + re.escape(money("0.00", locale)), text) is not None


def _link_telegram(bot, subscriber, chat_id):
    token = preferences.link_token(subscriber.id)
    db.session.commit()
    bot.user_sends(chat_id, f"/start {token}")
    assert preferences.poll_telegram()["linked"] == 1


def _arrived(event: str, smtp_server, sms_gateway, telegram_bot) -> dict:
    """Prepare every pending notice, deliver each message of ``event``, and read what came:
    {"email": (subject, body), "sms": text, "telegram": html} (the channels that got one)."""
    delivery.prepare()
    ids = db.session.scalars(select(NotificationDelivery.id).join(Notice, Notice.id == NotificationDelivery.notice_id)
                             .where(Notice.event == event, NotificationDelivery.state == "queued")
                             .order_by(NotificationDelivery.id)).all()
    before = (len(smtp_server.messages) if smtp_server else 0, len(sms_gateway.messages) if sms_gateway else 0,
              len(telegram_bot.messages) if telegram_bot else 0)
    for i in ids:
        assert delivery.deliver(i) == "sent"
    got = {}
    if smtp_server and smtp_server.messages[before[0]:]:
        [m] = smtp_server.messages[before[0]:]
        got["email"] = (m["subject"], m["body"].replace("\r\n", "\n").strip())
    if sms_gateway and sms_gateway.messages[before[1]:]:
        [m] = sms_gateway.messages[before[1]:]
        got["sms"] = m["text"]
    if telegram_bot and telegram_bot.messages[before[2]:]:
        [m] = telegram_bot.messages[before[2]:]
        got["telegram"] = m["text"]
    return got


def _shop(enabled=True):
    op.save_shop({"api_url": "http://127.0.0.1:9/v3", "shop_id": SHOP_ID, "secret": SECRET, "vat_code": "4",
                  "receipt": True, "payment_subject": "service", "payment_mode": "full_prepayment",
                  "min_sum": "10", "max_sum": "15000", "timeout": "5", "enabled": enabled}, actor="test")
    db.session.commit()


# -- free items -----------------------------------------------------------------------------------

def test_a_free_service_bought_reads_free_on_every_channel(smtp_server, sms_gateway, telegram_bot):
    """When I take a free service in the cabinet, do the e-mail, the SMS and the Telegram message
    say it is free, rather than that it cost "0,00 ₽" and was charged to my contract?"""
    free = gen_service("0.00", name="Кинозал «Детский»")
    s = gen_subscriber(full_name="Петрова Анна", email="anna@example.test")
    c = gen_contract(s)
    ledger.payment(c.id, Decimal("300.00"), actor="t", external_id="seed-free")
    db.session.commit()
    a = gen_account(contract=c, tariff=gen_tariff([free]))
    _link_telegram(telegram_bot, s, 7770001)
    acc.assign_service(a, {"service_id": free.id}, actor=f"subscriber:{s.id}", order_key="cabinet-free-1")
    db.session.commit()
    got = _arrived("service_bought", smtp_server, sms_gateway, telegram_bot)
    subject, body = got["email"]
    assert "Кинозал «Детский»" in subject
    assert f"Вы подключили «Кинозал «Детский»» для учётной записи {a.login} бесплатно по договору {c.number}." \
        in body
    assert got["sms"] == f"Договор {c.number}: подключено «Кинозал «Детский»» бесплатно. Баланс {money('300.00')}."
    assert "Бесплатно, договор " + c.number in unescape(got["telegram"])
    for text in (body, got["sms"], unescape(got["telegram"])):
        assert not zero_in(text) and "списывается" not in text


def test_a_paid_service_still_names_its_price(smtp_server, sms_gateway):
    """A paid purchase keeps its price and the note that it is charged to the contract."""
    tv = gen_service("199.00", name="Фильм «Начало»")
    s = gen_subscriber(email="boris@example.test")
    c = gen_contract(s)
    ledger.payment(c.id, Decimal("500.00"), actor="t", external_id="seed-paid")
    db.session.commit()
    a = gen_account(contract=c, tariff=gen_tariff([tv]))
    acc.assign_service(a, {"service_id": tv.id}, actor=f"subscriber:{s.id}", order_key="cabinet-paid-1")
    db.session.commit()
    got = _arrived("service_bought", smtp_server, sms_gateway, None)
    balance = money(db.session.get(type(c), c.id).balance)
    assert f"за {money('199.00')}. Сумма списывается с баланса договора {c.number}; сейчас на нём {balance}." \
        in got["email"][1]
    assert f"за {money('199.00')}. Баланс {balance}." in got["sms"]


def test_a_free_service_assigned_by_staff_in_english(smtp_server, sms_gateway):
    """Staff connect a free service for an English-speaking subscriber: "free of charge", no RUB0.00."""
    free = gen_service("0.00", name="Static IP")
    s = gen_subscriber(email="john@example.test", language="en")
    c = gen_contract(s)
    a = gen_account(contract=c, tariff=gen_tariff([free]))
    acc.assign_service(a, {"service_id": free.id}, actor="staff:t")
    db.session.commit()
    got = _arrived("service_assigned", smtp_server, sms_gateway, None)
    assert "It is free of charge." in got["email"][1]
    assert got["sms"] == f'Service "Static IP" connected, free of charge. Contract {c.number}.'
    assert not zero_in(got["email"][1] + got["sms"], "en")


def test_a_freeze_without_a_fee_has_no_fee_line(smtp_server, telegram_bot):
    """A freeze that costs nothing (the operator's fee 0, written "0.00" as billing.freeze does)
    says nothing of a fee; one that costs 50 ₽ says so."""
    s = gen_subscriber(email="vera@example.test", phones=[])
    c = gen_contract(s)
    _link_telegram(telegram_bot, s, 7770002)
    for fee, key in (("0.00", "free"), ("50.00", "paid")):
        notices.record(subscriber_id=s.id, contract_id=c.id, event="freeze_started", dedup_key=f"freeze:{key}",
                       data={"account_login": "vera", "starts_on": "2026-12-03", "frozen_until": "2026-12-20",
                             "fee": fee})
        db.session.commit()
        got = _arrived("freeze_started", smtp_server, None, telegram_bot)
        email, tg = got["email"][1], unescape(got["telegram"])
        if fee == "0.00":
            assert "абонентская плата не списывается.\n" in email and "приостановку" not in email
            assert tg.endswith("Абонентская плата за эти дни не списывается.")
            assert not zero_in(email + tg)
        else:
            assert f"плата за приостановку — {money('50.00')}." in email
            assert tg.endswith(f"плата за приостановку {money('50.00')}.")


# every money variable a template may test with {% if %}, at zero (a notice's "0.00")
ZERO = {"suggested_payment": "0.00", "charge": "0.00", "credit_limit": "0.00", "amount_to_unblock": "0.00",
        "price": "0.00", "fee": "0.00"}
# the figures the messages need besides (never zero: a payment, a promised payment)
OTHER = {"days_left": 3, "runs_out_on": "2026-12-08", "blocked_on": "2026-12-03", "amount": "500.00",
         "paid_at": "2026-12-03T10:00:00+00:00", "until": "2026-12-04", "service_name": "Кинозал",
         "account_login": "petrov", "period": "month", "starts_on": "2026-12-01", "ended_on": "2026-12-02",
         "frozen_until": "2026-12-20", "block_on": "2026-12-06", "subject": "Работы", "text": "Ночью работы."}


@pytest.mark.parametrize("grace", [None, True])
@pytest.mark.parametrize("locale", templates.LOCALES)
def test_no_default_template_prints_a_zero_amount(ctx, locale, grace):
    """Does any built-in message, on any channel, print a zero fee, price, payment or amount due?"""
    for event in NOTICE_EVENTS:
        for channel in templates.CHANNELS:
            context = {"subscriber_name": "Пётр", "contract_number": "26-1", "balance": "-12.34",
                       "grace": grace, **OTHER, **ZERO}
            r = templates.render(event, channel, locale, context)
            text = unescape(r.subject + "\n" + r.body)
            assert not zero_in(text, locale), (event, channel, text)


# -- the payment link -----------------------------------------------------------------------------

def _blocked_debtor(login):
    c, a = debtor(login)
    [n] = db.session.scalars(select(Notice).where(Notice.contract_id == c.id, Notice.event == "blocked")).all()
    return c, n


def test_a_blocked_subscriber_gets_a_link_that_opens_the_pay_form_with_what_lifts_the_block(
        app, client, smtp_server, telegram_bot, monkeypatch):
    """Blocked for balance, do I get a link in the e-mail and in Telegram that, once I log in,
    opens my contract's pay form with the amount that lifts the block already filled in?"""
    monkeypatch.setitem(app.config, "PUBLIC_URL", BASE)
    _shop()
    c, n = _blocked_debtor("anna")
    s = c.subscriber
    _link_telegram(telegram_bot, s, 7770003)
    due = Decimal(n.data["amount_to_unblock"])
    assert due > 0
    got = _arrived("blocked", smtp_server, None, telegram_bot)
    link = f"{BASE}/cabinet/contracts/{c.id}#pay-{c.id}"
    assert f"Оплатить онлайн: {link}\n" in got["email"][1] + "\n"
    assert f"{money(due)} или больше" in got["email"][1]
    assert f'<a href="{link}">Оплатить онлайн</a>' in got["telegram"]
    # the link itself: the cabinet asks for the login, then shows the form with the amount due
    path = link.removeprefix(BASE).split("#")[0]
    assert client.get(path).status_code == 302
    cabinet_login(client, "anna", lang="ru")
    page = client.get(path).get_data(as_text=True)
    form = re.search(rf'<form[^>]*id="pay-{c.id}".*?</form>', page, re.S).group(0)
    assert re.search(r'name="amount"[^>]*value="([^"]+)"', form).group(1) == f"{due:.2f}"


def test_without_a_public_url_or_online_payment_the_message_has_no_link(app, smtp_server, sms_gateway, monkeypatch):
    """Without PUBLIC_URL (a worker cannot know the portal's address), or with online payment
    off, the block message goes without a link: no "None/cabinet/…", no "Оплатить онлайн"."""
    _shop()
    monkeypatch.setitem(app.config, "PUBLIC_URL", None)
    _blocked_debtor("boris")
    body = _arrived("blocked", smtp_server, None, None)["email"][1]
    assert "Оплатить" not in body and "None" not in body and "http" not in body
    assert "пополните счёт на" in body  # the rest of the message is there
    monkeypatch.setitem(app.config, "PUBLIC_URL", "my.isp.test")  # no scheme: no link rather than a broken one
    _blocked_debtor("gleb")
    body = _arrived("blocked", smtp_server, None, None)["email"][1]
    assert "Оплатить" not in body and "my.isp.test" not in body
    monkeypatch.setitem(app.config, "PUBLIC_URL", BASE)
    _shop(enabled=False)
    db.session.info.clear()  # (the shop's state is read once per session, as a prepare batch does)
    _blocked_debtor("vera")
    body = _arrived("blocked", smtp_server, None, None)["email"][1]
    assert "Оплатить" not in body and "http" not in body


def test_low_balance_and_promised_payment_messages_link_to_the_payment_page(app, smtp_server, monkeypatch):
    """The forecast warning and the promised payment's reminder carry the same link, in the
    subscriber's language."""
    monkeypatch.setitem(app.config, "PUBLIC_URL", BASE + "/")  # a trailing slash makes no double one
    _shop()
    s = gen_subscriber(email="lena@example.test", phones=[], language="en")
    c = gen_contract(s)
    ledger.post(c.id, "correction", Decimal("-40.00"), actor="t", comment="below the limit already")
    notices.record(subscriber_id=s.id, contract_id=c.id, event="low_balance", dedup_key="lb-1",
                   data={"days_left": 2, "runs_out_on": "2026-12-05", "suggested_payment": "650.00"})
    notices.record(subscriber_id=s.id, contract_id=c.id, event="promised_expiring", dedup_key="pe-1",
                   data={"amount": "300.00", "until": "2026-12-04", "last_day": "2026-12-03"})
    db.session.commit()
    link = f"{BASE}/cabinet/contracts/{c.id}#pay-{c.id}"
    for event in ("low_balance", "promised_expiring"):
        body = _arrived(event, smtp_server, None, None)["email"][1]
        assert f"Pay online: {link}\n" in body + "\n", body


def test_the_admin_preview_shows_the_real_link(app, ctx, client, monkeypatch):
    """Does the template preview on a contract show the link that contract's subscriber gets
    (not a sample address)?"""
    monkeypatch.setitem(app.config, "PUBLIC_URL", BASE)
    _shop()
    staff_in_english(client)
    c = gen_contract()
    answer = post(client, "/notification-templates/blocked/sms/ru/preview",
                  {"body": "Оплата: {{ pay_url }}", "contract": c.number}, headers={"HX-Request": "true"})
    html = unescape(answer.get_data(as_text=True))
    assert f"Оплата: {BASE}/cabinet/contracts/{c.id}#pay-{c.id}" in html and "example.invalid" not in html


# -- an edited template takes effect at once ------------------------------------------------------

def test_an_admins_edit_is_what_the_next_message_says(app, client, sms_gateway):
    """Messages are rendered from templates compiled once per process. When an admin edits the
    SMS, does the very next message say the new text, and after a second edit the newer one?"""
    staff_in_english(client)
    s = gen_subscriber(phones=["+79005550001"])
    c = gen_contract(s)

    def next_sms(key):
        notices.record(subscriber_id=s.id, contract_id=c.id, event="payment_received", critical=True,
                       dedup_key=key, data={"amount": "100.00", "paid_at": "2026-12-03T10:00:00+00:00"})
        db.session.commit()
        return _arrived("payment_received", None, sms_gateway, None)["sms"]

    assert next_sms("p1").startswith(f"Платёж {money('100.00')} зачислен")
    path = "/notification-templates/payment_received/sms/ru"
    assert post(client, path, {"body": "Спасибо! +{{ amount|money }}"}).status_code == 303
    assert next_sms("p2") == f"Спасибо! +{money('100.00')}"
    assert post(client, path, {"body": "Получили {{ amount|money }}"}).status_code == 303
    assert next_sms("p3") == f"Получили {money('100.00')}"
    assert post(client, f"{path}/reset", {}).status_code == 303
    assert next_sms("p4").startswith(f"Платёж {money('100.00')} зачислен")
