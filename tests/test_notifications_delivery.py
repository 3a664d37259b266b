"""Notification delivery through the real services' stand-ins: a real SMTP server with STARTTLS
and AUTH, the SMS gateway and Telegram Bot API emulators over HTTP. Each test records a notice
as billing does (portal.billing.notices), lets the sweep's ``prepare`` turn it into deliveries
and runs the delivery job's function in this process (the worker and outage tests are in
test_notifications_faults.py)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.billing import notices
from portal.extensions import db
from portal.models import Notice, NotificationDelivery, NotificationPreference, utcnow
from portal.notifications import delivery, preferences, ratelimit
from portal.notifications.templates import render
from tests.builders import gen_contract, gen_subscriber
from tests.notifications_fixtures import SMTP_LOGIN

pytestmark = pytest.mark.integration

PAID = {"amount": "500.00", "paid_at": "2026-12-03T10:00:00+00:00"}


def _notice(subscriber, contract=None, event="payment_received", data=None, critical=True, key=None):
    notices.record(subscriber_id=subscriber.id, contract_id=contract.id if contract else None, event=event,
                   data=data if data is not None else PAID, critical=critical,
                   dedup_key=key or f"test:{event}:{time.monotonic_ns()}")
    db.session.commit()


def _deliveries(subscriber_id=None):
    db.session.rollback()
    q = select(NotificationDelivery).order_by(NotificationDelivery.id)
    if subscriber_id is not None:
        q = q.where(NotificationDelivery.subscriber_id == subscriber_id)
    return db.session.scalars(q).all()


def _due_now(delivery_id):
    """Make a retry due at once (the backoff itself is checked where it matters)."""
    db.session.query(NotificationDelivery).filter_by(id=delivery_id).update({"next_attempt_at": utcnow()})
    db.session.commit()


def test_a_payment_notice_reaches_the_subscriber_by_email_over_starttls(smtp_server):
    """Does a subscriber with an e-mail address get the payment message, in Russian, from the
    operator's address, over STARTTLS with the channel's login, exactly once however often the
    job runs?"""
    s = gen_subscriber(email="anna@example.test", phones=[])
    c = gen_contract(s)
    _notice(s, c)
    assert delivery.prepare() == 1
    [d] = _deliveries()
    assert (d.channel, d.address, d.state) == ("email", "anna@example.test", "queued")
    assert delivery.deliver(d.id) == "sent"
    assert delivery.deliver(d.id) == "not queued"  # a second run of the same job sends nothing
    [msg] = smtp_server.messages
    expected = render("payment_received", "email", "ru", {**PAID, "subscriber_name": s.full_name,
                                                         "contract_number": c.number, "balance": str(c.balance)})
    assert msg["to"] == ["anna@example.test"] and msg["from"] == "billing@isp.test"
    assert msg["subject"] == expected.subject and msg["body"].strip() == expected.body.strip()
    assert msg["tls"] and msg["login"] == SMTP_LOGIN.encode()
    [d] = _deliveries()
    assert d.state == "sent" and d.sent_at is not None and d.attempts == 1 and d.last_error is None
    assert db.session.get(Notice, d.notice_id).processed_at is not None


def test_a_refused_mailbox_is_a_failed_delivery_with_the_servers_words(smtp_server):
    """When the mail server refuses the address (550), is the message marked failed with the
    server's reason, and not tried again?"""
    s = gen_subscriber(email="gone@example.test", phones=[])
    smtp_server.refuse.add("gone@example.test")
    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    assert delivery.deliver(d.id) == "failed"
    [d] = _deliveries()
    assert d.state == "failed" and d.last_error.startswith("550") and "No such user" in d.last_error
    assert smtp_server.messages == []


def test_a_message_refused_for_its_content_fails_at_once_and_a_quota_or_4xx_is_retried(smtp_server):
    """A 554 5.6.0 to the message's DATA (its content refused) would refuse the same message
    every time: is the delivery failed at once with the server's words, not sent again until it
    expires? A daily quota's 550 5.4.5 there, or a 451, is the channel's for now: retried, then
    delivered once."""
    s = gen_subscriber(email="anna@example.test", phones=[])
    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    smtp_server.at_data.append("554 5.6.0 Message content rejected")
    assert delivery.deliver(d.id) == "failed"
    [d] = _deliveries()
    assert d.state == "failed" and d.attempts == 1 and d.last_error.startswith("554") and "content" in d.last_error
    assert smtp_server.messages == [] and delivery.deliver(d.id) == "not queued"
    other = gen_subscriber(email="boris@example.test", phones=[])
    _notice(other)
    delivery.prepare()
    [d2] = [x for x in _deliveries() if x.address == "boris@example.test"]
    smtp_server.at_data.extend(["550 5.4.5 Daily user sending quota exceeded", "451 4.3.0 Try again later"])
    assert delivery.deliver(d2.id) == "retry"
    assert delivery.deliver(d2.id) == "retry"
    assert delivery.deliver(d2.id) == "sent"
    assert [m["to"] for m in smtp_server.messages] == [["boris@example.test"]]


@pytest.mark.parametrize("code, text, refused", [
    (554, "5.6.0 Message content rejected", True), (552, "5.3.4 Message too big for system", True),
    (552, "Message size exceeds fixed maximum message size", True), (550, "5.2.3 Message length exceeds limit", True),
    (550, "5.4.5 Daily user sending quota exceeded", False),
    (550, "5.7.26 Unauthenticated email from isp.test is not accepted due to DMARC policy", False),
    (554, "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org", False),
    (535, "5.7.8 Authentication credentials invalid", False), (554, "Transaction failed", False),
    (451, "4.3.0 Try again later", False), (452, "4.3.1 Insufficient system storage", False),
])
def test_which_smtp_refusals_are_the_messages_own(code, text, refused):
    """Only the message's content or size is refused for good (RFC 3463 5.6.x, 5.3.4, 5.2.3;
    a bare 552); the sender's domain, a blocklist, a quota or the login are for staff or time
    to fix, so those messages wait and go out once it is fixed."""
    from portal.notifications.smtp import message_refused

    assert message_refused(code, text) is refused


def test_sms_goes_through_the_gateway_after_it_was_busy_once(sms_gateway):
    """The gateway answers «Сервис временно недоступен» (220) once: is the SMS retried after a
    pause and delivered once, to the subscriber's mobile number in the gateway's form?"""
    s = gen_subscriber(phones=["8 (900) 123-45-67"])
    _notice(s)
    sms_gateway.fail("Сервис временно недоступен, попробуйте чуть позже", status=220, times=1)
    delivery.prepare()
    [d] = _deliveries()
    assert d.address == "79001234567"
    before = utcnow()
    assert delivery.deliver(d.id) == "retry"
    [d] = _deliveries()
    assert d.state == "queued" and d.last_error.startswith("220: Сервис временно недоступен")
    assert d.next_attempt_at > before
    assert delivery.deliver(d.id) == "sent"  # (it waits out the short test backoff first)
    [msg] = sms_gateway.messages
    assert msg["to"] == "79001234567" and msg["sender"] == "ISP"
    [d] = _deliveries()
    assert d.state == "sent" and d.external_id == msg["sms_id"] and d.attempts == 2


def test_an_sms_to_a_number_on_the_stop_list_fails_with_the_gateways_reason(sms_gateway):
    """A per-number refusal is the recipient's: failed at once, with the gateway's code and text."""
    s = gen_subscriber(phones=["+79990000000"])
    sms_gateway.fail("Номер находится в стоп-листе", status=209, to="79990000000")
    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    assert delivery.deliver(d.id) == "failed"
    [d] = _deliveries()
    assert d.state == "failed" and d.last_error == "209: Номер находится в стоп-листе"
    assert sms_gateway.messages == []


def test_a_wrong_api_id_is_retried_and_never_shown(sms_gateway):
    """A wrong api_id (200 «Неправильный api_id») is the channel's problem: the message waits for
    staff to fix it, and the stored api_id appears in no error."""
    from portal.notifications import channels

    channels.save("sms", {"api_url": sms_gateway.url, "api_id": "wrong-secret-id", "sender": "ISP", "rate": "50",
                          "timeout": "5", "enabled": True}, actor="test")
    db.session.commit()
    s = gen_subscriber(phones=["+79001112233"])
    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    assert delivery.deliver(d.id) == "retry"
    [d] = _deliveries()
    assert d.last_error == "200: Неправильный api_id" and "wrong-secret-id" not in d.last_error


def _link(bot, subscriber, chat_id):
    token = preferences.link_token(subscriber.id)
    db.session.commit()
    bot.user_sends(chat_id, f"/start {token}")
    return preferences.poll_telegram()


def test_telegram_linking_then_a_message_then_429_and_a_blocked_bot(telegram_bot):
    """The subscriber opens the cabinet's deep link: is the chat bound (and told so)? Then a
    message arrives; Telegram's 429 "retry after" is waited out (not counted as an attempt, the
    whole channel paused); a user who blocked the bot is a failed delivery with Telegram's words."""
    s = gen_subscriber(phones=[])
    assert _link(telegram_bot, s, 5550001) == {"updates": 1, "linked": 1}
    db.session.rollback()
    assert db.session.get(NotificationPreference, s.id).telegram_chat_id == 5550001
    assert telegram_bot.sent_to(5550001) == [preferences.LINKED_REPLY["ru"]]
    assert preferences.poll_telegram() == {"updates": 0, "linked": 0}  # confirmed updates are gone

    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    assert (d.channel, d.address) == ("telegram", "5550001")
    telegram_bot.throttle(retry_after=1)
    before = utcnow()
    assert delivery.deliver(d.id) == "retry"
    [d] = _deliveries()
    assert d.last_error == "429: Too Many Requests: retry after 1" and d.attempts == 0
    assert d.next_attempt_at >= before + timedelta(seconds=1)
    assert ratelimit.take("telegram", 50) > 0.5  # the channel itself waits
    time.sleep(1.1)
    assert delivery.deliver(d.id) == "sent"
    assert telegram_bot.sent_to(5550001)[-1] == d.body
    # the templates are HTML: without parse_mode the subscriber would read the tags
    assert telegram_bot.messages[-1]["parse_mode"] == "HTML"

    telegram_bot.block(5550001)
    _notice(s)
    delivery.prepare()
    d2 = _deliveries()[-1]
    assert delivery.deliver(d2.id) == "failed"
    assert _deliveries()[-1].last_error == "403: Forbidden: bot was blocked by the user"


def test_an_old_or_unknown_start_token_binds_nothing(telegram_bot):
    """A /start with a token that is not (or no longer) valid links no chat and says so."""
    s = gen_subscriber(phones=[])
    token = preferences.link_token(s.id)
    db.session.commit()
    db.session.query(NotificationPreference).filter_by(subscriber_id=s.id).update(
        {"telegram_link_expires": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    telegram_bot.user_sends(5550002, f"/start {token}")
    telegram_bot.user_sends(5550003, "/start not-a-token")
    assert preferences.poll_telegram() == {"updates": 2, "linked": 0}
    db.session.rollback()
    assert db.session.get(NotificationPreference, s.id).telegram_chat_id is None
    assert telegram_bot.sent_to(5550003) == [preferences.UNKNOWN_REPLY["ru"]]


def test_opt_out_keeps_everything_but_critical_messages(sms_gateway, telegram_bot):
    """A subscriber who wants only service-critical messages, by SMS only: does a low-balance
    warning go nowhere while the block still comes by SMS? And one who switched every channel
    off still hears of the block by every channel we can reach?"""
    s = gen_subscriber(phones=["+79001234567"])
    _link(telegram_bot, s, 5550010)
    preferences.save(s.id, {"sms": "1", "only_critical": "1", "locale": "en"}, actor="test")
    db.session.commit()
    _notice(s, event="low_balance", critical=False,
            data={"days_left": 2, "runs_out_on": "2026-12-05", "suggested_payment": "650.00"})
    _notice(s, event="blocked", critical=True, data={"amount_to_unblock": "120.00"})
    assert delivery.prepare() == 2
    rows = _deliveries()
    assert [(r.channel, db.session.get(Notice, r.notice_id).event) for r in rows] == [("sms", "blocked")]
    assert rows[0].body == render("blocked", "sms", "en", {"amount_to_unblock": "120.00",
                                                           "subscriber_name": s.full_name}).body

    preferences.save(s.id, {"only_critical": "1", "locale": "ru"}, actor="test")  # every channel off
    db.session.commit()
    _notice(s, event="low_balance", critical=False, data={"days_left": 1})
    _notice(s, event="blocked", critical=True, data={"amount_to_unblock": "90.00"})
    delivery.prepare()
    assert sorted(r.channel for r in _deliveries()[1:]) == ["sms", "telegram"]


def test_a_notice_for_a_subscriber_we_cannot_reach_is_processed_without_deliveries(sms_gateway):
    """No e-mail, no mobile, no Telegram: the notice is taken (not swept forever), nothing is sent."""
    s = gen_subscriber(phones=[])
    _notice(s)
    assert delivery.prepare() == 1 and delivery.prepare() == 0
    assert _deliveries() == []


def test_the_channel_rate_spaces_the_sends(sms_gateway):
    """With 2 messages a second, do three sends in a row take their slots half a second apart?"""
    from portal.notifications import channels

    channels.save("sms", {"api_url": sms_gateway.url, "api_id": "A1B2C3D4-sms-api-id", "sender": "ISP", "rate": "2",
                          "timeout": "5", "enabled": True}, actor="test")
    db.session.commit()
    waits = [ratelimit.take("sms", 2) for _ in range(3)]
    assert waits[0] == pytest.approx(0, abs=0.05)
    assert waits[1] == pytest.approx(0.5, abs=0.1) and waits[2] == pytest.approx(1.0, abs=0.1)


def test_the_bot_token_stays_out_of_a_failed_deliverys_reason(telegram_bot):
    """The Bot API is unreachable: the reason on the row names the failure, never the token
    (it is part of every Bot API URL)."""
    from tests.notifications_fixtures import BOT_TOKEN

    s = gen_subscriber(phones=[])
    _link(telegram_bot, s, 5550020)
    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    telegram_bot.down()
    assert delivery.deliver(d.id) == "retry"
    [d] = _deliveries()
    assert "ConnectionError" in d.last_error and BOT_TOKEN not in d.last_error and "***" in d.last_error


def test_parallel_jobs_for_one_delivery_send_it_once(app, sms_gateway):
    """Four workers run the same delivery's job at the same moment (a sweep re-enqueued it while
    the hand-off's job waited): does the subscriber get one SMS, and the row say sent?"""
    import threading

    s = gen_subscriber(phones=["+79005550101"])
    _notice(s)
    delivery.prepare()
    [d] = _deliveries()
    gate = sms_gateway.hold("/sms/send")
    results, start = [], threading.Barrier(4)

    def job():
        with app.app_context():
            start.wait()
            results.append(delivery.deliver(d.id))

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    assert gate.wait_arrivals(1, timeout=10)
    time.sleep(0.3)  # the other three have had their chance to reach the gateway too
    gate.open()
    for t in threads:
        t.join(timeout=30)
    assert results.count("sent") == 1 and set(results) <= {"sent", "not queued", "taken"}
    assert len(gate.arrived) == 1 and len(sms_gateway.messages) == 1
    assert _deliveries()[0].state == "sent"


def test_email_over_implicit_tls(ctx, tmp_path, monkeypatch):
    """The SSL/TLS setting (port 465 style): is the message delivered over a TLS connection
    from the first byte?"""
    import ssl

    from aiosmtpd.controller import Controller

    from portal.notifications import channels
    from tests.helpers import free_port
    from tests.notifications_fixtures import Mailbox, _certificate

    cert_file, key_file = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), ssl_context=context,
                            server_hostname="localhost")
    controller.start()
    try:
        channels.save("email", {"host": "127.0.0.1", "port": str(controller.port), "security": "ssl", "login": "",
                                "sender": "billing@isp.test", "rate": "10", "timeout": "10", "enabled": True},
                      actor="test")
        db.session.commit()
        s = gen_subscriber(email="tls@example.test", phones=[])
        _notice(s)
        delivery.prepare()
        [d] = _deliveries()
        assert delivery.deliver(d.id) == "sent"
        [msg] = box.messages
        assert msg["to"] == ["tls@example.test"] and msg["tls"]
    finally:
        controller.stop()
