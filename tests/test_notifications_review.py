"""Notification delivery after the issue 19 review, through the SMS gateway and Bot API
emulators over HTTP: a long outage loses nothing and a two-day-old message is not sent; a
warning the subscriber has paid since is cancelled, not sent; a payment message is no longer
critical; quiet hours hold the courtesies, not a block; a killed job's message is sent again
once, and the log says so; the bot token never shows."""
from __future__ import annotations

import html
import logging
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from portal.billing import blocking, clock, grace, ledger, notices
from portal.extensions import db
from portal.models import Notice, NotificationDelivery
from portal.notifications import channels, delivery
from portal.platforms.http import recording
from tests.builders import gen_contract, gen_staff, gen_subscriber, subscriber_with_account
from tests.helpers import login
from tests.notifications_fixtures import BOT_TOKEN, SMS_API_ID, forecast_warned_pair

pytestmark = pytest.mark.integration

ZONE = "Europe/Moscow"


def _notice(subscriber, event="blocked", data=None, critical=True, contract=None):
    notices.record(subscriber_id=subscriber.id, contract_id=contract.id if contract else None, event=event,
                   data=data if data is not None else {"amount_to_unblock": "50.00"}, critical=critical,
                   dedup_key=f"review:{event}:{time.monotonic_ns()}")
    db.session.commit()


def _rows(subscriber_id=None):
    db.session.rollback()
    q = select(NotificationDelivery).order_by(NotificationDelivery.id)
    if subscriber_id is not None:
        q = q.where(NotificationDelivery.subscriber_id == subscriber_id)
    return db.session.scalars(q).all()


def _set(delivery_id, **values):
    db.session.execute(update(NotificationDelivery).where(NotificationDelivery.id == delivery_id).values(**values))
    db.session.commit()


def _row_of(subscriber_id, event):
    [row] = [r for r in _rows(subscriber_id) if db.session.get(Notice, r.notice_id).event == event]
    return row


def _one_row(subscriber):
    delivery.prepare()
    [d] = _rows(subscriber.id)
    return d


# -- retries bounded by the message's age ----------------------------------------------------------

def test_a_long_gateway_outage_is_retried_until_the_message_is_two_days_old(sms_gateway):
    """The gateway is down for hours: is the message still retried after many more than the old
    eight attempts, with a backoff no longer than SYNC_BACKOFF_MAX, and failed as expired (with
    the gateway's error) only once it is NOTIFY_GIVE_UP_AFTER hours old?"""
    from flask import current_app

    s = gen_subscriber(phones=["+79007770001"])
    _notice(s)
    d = _one_row(s)
    sms_gateway.down()
    _set(d.id, attempts=20, created_at=datetime.now(UTC) - timedelta(hours=47))
    before = datetime.now(UTC)
    assert delivery.deliver(d.id) == "retry"
    [d] = _rows(s.id)
    assert d.state == "queued" and d.attempts == 21 and "ConnectionError" in d.last_error
    cap = current_app.config["SYNC_BACKOFF_MAX"]
    assert before < d.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=cap)

    hours = current_app.config["NOTIFY_GIVE_UP_AFTER"]
    _set(d.id, next_attempt_at=datetime.now(UTC), created_at=datetime.now(UTC) - timedelta(hours=hours, seconds=1))
    assert delivery.deliver(d.id) == "failed"
    [d] = _rows(s.id)
    assert d.state == "failed" and d.last_error.startswith(f"expired: not sent within {hours:g} h")
    assert "ConnectionError" in d.last_error and sms_gateway.messages == []


def test_the_account_troubles_the_gateway_reports_per_number_are_retried(sms_gateway):
    """SMS.ru answers per number «Не хватает средств» (201: our account's) — retried; «Неправильно
    указан номер» (202: the recipient's) — failed at once."""
    s = gen_subscriber(phones=["+79007770002"])
    _notice(s)
    d = _one_row(s)
    sms_gateway.fail("Не хватает средств на лицевом счету", status=201, to="79007770002", times=1)
    assert delivery.deliver(d.id) == "retry"
    assert _rows(s.id)[0].last_error == "201: Не хватает средств на лицевом счету"
    sms_gateway.fail("Неправильно указан номер телефона получателя", status=202, to="79007770002")
    _set(d.id, next_attempt_at=datetime.now(UTC))
    assert delivery.deliver(d.id) == "failed"
    assert _rows(s.id)[0].state == "failed"


def test_a_switched_off_channel_keeps_the_message_until_it_is_too_old(sms_gateway):
    """Staff switch the SMS channel off for a while: the message waits (retried), and is
    failed as expired only past NOTIFY_GIVE_UP_AFTER."""
    s = gen_subscriber(phones=["+79007770003"])
    _notice(s)
    d = _one_row(s)
    channels.save("sms", {"api_url": sms_gateway.url, "api_id": SMS_API_ID, "sender": "ISP", "rate": "50",
                          "timeout": "5", "enabled": False}, actor="test")
    db.session.commit()
    for _ in range(10):
        assert delivery.deliver(d.id) == "no channel"
        _set(d.id, next_attempt_at=datetime.now(UTC))
    [d] = _rows(s.id)
    assert d.state == "queued" and d.attempts == 10
    _set(d.id, created_at=datetime.now(UTC) - timedelta(days=3))
    assert delivery.deliver(d.id) == "no channel"
    [d] = _rows(s.id)
    assert d.state == "failed" and d.last_error.startswith("expired:") and "not configured" in d.last_error


def test_a_wrong_smtp_password_is_the_channels_fault_retried_and_never_shown(smtp_server):
    """The mail server refuses the channel's login (535): the message waits for staff to fix the
    password (retried, not failed), and the password is in no reason."""
    from tests.notifications_fixtures import SMTP_LOGIN

    channels.save("email", {"host": "127.0.0.1", "port": str(smtp_server.port), "security": "starttls",
                            "login": SMTP_LOGIN, "password": "Wrong-Pa55word", "sender": "billing@isp.test",
                            "rate": "50", "timeout": "10", "enabled": True}, actor="test")
    db.session.commit()
    s = gen_subscriber(email="rv-mail@example.test", phones=[])
    _notice(s)
    d = _one_row(s)
    assert delivery.deliver(d.id) == "retry"
    [d] = _rows(s.id)
    assert d.state == "queued" and d.last_error.startswith("535") and "Wrong-Pa55word" not in d.last_error
    assert smtp_server.messages == []


# -- a warning the subscriber has paid since -------------------------------------------------------

def test_a_block_notice_paid_before_its_turn_is_cancelled_not_sent(client, sms_gateway):
    """The account is blocked for balance and the SMS waits (the gateway was busy); the
    subscriber pays enough before it goes: is the SMS cancelled, not sent, with the reason on
    the staff's delivery log, in Russian "отменено"? And a block that still holds goes out."""
    _s, c, a = subscriber_with_account("rv1", paid=None)
    _s2, c2, a2 = subscriber_with_account("rv2", paid=None)
    for contract in (c, c2):
        ledger.post(contract.id, "correction", -Decimal("80.00"), actor="t", comment="debt")
    db.session.commit()
    db.session.refresh(a)
    assert a.status == "blocked"
    delivery.prepare()
    paid_row, still_row = _row_of(c.subscriber_id, "blocked"), _row_of(c2.subscriber_id, "blocked")
    ledger.payment(c.id, Decimal("80.00"), actor="t", external_id="rv1-pay")
    db.session.commit()
    assert delivery.deliver(paid_row.id) == "cancelled"
    assert delivery.deliver(still_row.id) == "sent"
    row = db.session.get(NotificationDelivery, paid_row.id)
    assert row.state == "cancelled" and row.last_error.startswith("cancelled: the balance covers")
    assert [m["to"] for m in sms_gateway.messages] == [still_row.address]
    assert delivery.deliver(paid_row.id) == "not queued"  # a later run does not revive it

    # staff hold a third one ("do not block until" today): the block is lifted unpaid, the SMS too
    _s3, c3, _a3 = subscriber_with_account("rv5", paid=None)
    ledger.post(c3.id, "correction", -Decimal("80.00"), actor="t", comment="debt")
    db.session.commit()
    delivery.prepare()
    held_row = _row_of(c3.subscriber_id, "blocked")
    grace.save_contract(c3, {"grace_days": "", "do_not_block_until": clock.today().isoformat()}, actor="t")
    blocking.balance_rule([c3.id])
    db.session.commit()
    assert delivery.deliver(held_row.id) == "cancelled"
    assert _row_of(c3.subscriber_id, "blocked").last_error == \
        f"cancelled: staff set the contract not to be blocked until {clock.today().isoformat()}"
    assert len(sms_gateway.messages) == 1

    gen_staff("rvadmin", role="admin")
    login(client, "rvadmin")
    page = html.unescape(client.get(f"/subscribers/{c.subscriber_id}/notifications",
                                    headers={"Accept-Language": "ru"}).get_data(as_text=True))
    assert f'data-delivery="{paid_row.id}" data-state="cancelled"' in page
    assert "отменено: уже неактуально" in page and "cancelled: the balance covers" in page


def test_a_grace_warning_paid_before_its_turn_is_cancelled(sms_gateway):
    """In grace (3 days before the block) the subscriber is warned, and pays before the SMS
    goes: cancelled. Another one still short gets it."""
    grace.save_rule({"days": "3"}, actor="t")
    db.session.commit()
    _s, c, a = subscriber_with_account("rv3", paid=None)
    _s2, c2, _a2 = subscriber_with_account("rv4", paid=None)
    for contract in (c, c2):
        ledger.post(contract.id, "correction", -Decimal("30.00"), actor="t", comment="debt")
    db.session.commit()
    delivery.prepare()
    paid_row, still_row = _row_of(c.subscriber_id, "low_balance"), _row_of(c2.subscriber_id, "low_balance")
    assert db.session.get(Notice, paid_row.notice_id).data["grace"] is True
    ledger.payment(c.id, Decimal("30.00"), actor="t", external_id="rv3-pay")
    db.session.commit()
    assert delivery.deliver(paid_row.id) == "cancelled"
    assert delivery.deliver(still_row.id) == "sent"
    assert _row_of(c.subscriber_id, "low_balance").last_error.startswith("cancelled: the balance covers")
    assert [m["to"] for m in sms_gateway.messages] == [still_row.address]


def test_a_forecast_warning_is_cancelled_when_a_payment_makes_the_money_last(sms_gateway):
    """"Your money lasts 4 more days" (threshold 7) is queued; a payment of a month's price
    arrives first: the warning is cancelled. Without the payment it goes."""
    today = date(2025, 1, 27)
    made = forecast_warned_pair(today, "+7900777001", "rv-f")
    with clock.as_of(today):
        paid, still = (_row_of(c.subscriber_id, "low_balance") for c in made)
        ledger.payment(made[0].id, Decimal("450.00"), actor="t", external_id="rv-f-top")
        db.session.commit()
        assert delivery.deliver(paid.id) == "cancelled"
        assert delivery.deliver(still.id) == "sent"
    assert _row_of(made[0].subscriber_id, "low_balance").last_error.startswith(
        "cancelled: the balance now covers more than 7")
    assert [m["to"] for m in sms_gateway.messages] == [still.address]


# -- a payment is not critical; quiet hours ----------------------------------------------------------

def test_a_payment_message_does_not_reach_who_wants_only_critical_ones(sms_gateway):
    """A subscriber who asked for service-critical messages only pays: no SMS about it; one who
    did not gets it."""
    from portal.notifications import preferences

    quiet_s, told_s = gen_subscriber(phones=["+79007770020"]), gen_subscriber(phones=["+79007770021"])
    preferences.save(quiet_s.id, {"sms": "1", "only_critical": "1", "locale": "ru"}, actor="t")
    db.session.commit()
    for n, s in enumerate((quiet_s, told_s)):
        ledger.payment(gen_contract(s).id, Decimal("100.00"), actor="t", external_id=f"rv-pay-{n}")
    db.session.commit()
    delivery.prepare()
    assert _rows(quiet_s.id) == []
    [d] = _rows(told_s.id)
    assert delivery.deliver(d.id) == "sent"


def test_quiet_hours_span_the_billing_midnight(app, monkeypatch):
    """With quiet hours 22:00-09:00 Moscow, is 23:30 and 00:30 (still the previous day in UTC)
    held to 09:00 Moscow of the right day, and 09:00 and 21:59 not held?"""
    monkeypatch.setitem(app.config, "NOTIFY_QUIET_HOURS", "22:00-09:00")
    monkeypatch.setitem(app.config, "BILLING_TZ", ZONE)
    msk = ZoneInfo(ZONE)
    nine = datetime(2025, 2, 1, 9, 0, tzinfo=msk)
    with app.app_context():
        assert delivery.quiet_until(datetime(2025, 1, 31, 23, 30, tzinfo=msk)) == nine
        after_midnight = datetime(2025, 2, 1, 0, 30, tzinfo=msk)
        assert after_midnight.astimezone(UTC).date() == date(2025, 1, 31)
        assert delivery.quiet_until(after_midnight.astimezone(UTC)) == nine
        assert delivery.quiet_until(nine) is None
        assert delivery.quiet_until(datetime(2025, 2, 1, 21, 59, tzinfo=msk)) is None
        monkeypatch.setitem(app.config, "NOTIFY_QUIET_HOURS", "01:00-06:00")  # a window within one day
        assert delivery.quiet_until(datetime(2025, 2, 1, 0, 59, tzinfo=msk)) is None
        assert delivery.quiet_until(datetime(2025, 2, 1, 5, 0, tzinfo=msk)) == datetime(2025, 2, 1, 6, 0, tzinfo=msk)
        monkeypatch.setitem(app.config, "NOTIFY_QUIET_HOURS", "")
        assert delivery.quiet_until(datetime(2025, 2, 1, 3, 0, tzinfo=msk)) is None


def test_in_quiet_hours_a_warning_waits_and_a_block_goes_at_once(app, sms_gateway, monkeypatch):
    """Now is inside the quiet hours: is a low-balance warning held to their end (not handed to
    RQ before), and a block notice sent at once? A retry that falls into them waits too."""
    now = datetime.now(ZoneInfo(app.config["BILLING_TZ"]))
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    monkeypatch.setitem(app.config, "NOTIFY_QUIET_HOURS", f"{start:%H:%M}-{end:%H:%M}")
    s = gen_subscriber(phones=["+79007770030"])
    _notice(s, event="low_balance", critical=False, data={"days_left": 2})
    _notice(s, event="blocked", critical=True)
    delivery.prepare()
    warning, block = sorted(_rows(s.id), key=lambda r: db.session.get(Notice, r.notice_id).critical)
    expected_end = end.replace(second=0, microsecond=0).astimezone(UTC)
    assert warning.next_attempt_at == expected_end and warning.enqueued_at is None
    assert delivery.deliver(warning.id) == "not due"
    assert delivery.deliver(block.id) == "sent"
    assert len(sms_gateway.messages) == 1

    _set(warning.id, next_attempt_at=datetime.now(UTC))  # e.g. a retry due in the night
    assert delivery.deliver(warning.id) == "quiet hours"
    [w] = [r for r in _rows(s.id) if r.id == warning.id]
    assert w.state == "queued" and abs((w.next_attempt_at - expected_end).total_seconds()) < 2
    assert len(sms_gateway.messages) == 1


# -- a killed job ----------------------------------------------------------------------------------

def test_a_killed_jobs_message_is_sent_again_once_and_the_log_says_so(sms_gateway):
    """A job died while sending: does the sweep send it again with "it may arrive twice" in the
    log; and if the job dies on it again, is it failed instead of sent in a loop? A message past
    NOTIFY_GIVE_UP_AFTER is failed as expired."""
    s = gen_subscriber(phones=["+79007770040"])
    _notice(s)
    d = _one_row(s)
    long_ago = datetime.now(UTC) - timedelta(seconds=delivery.STALE_SENDING + 5)
    _set(d.id, state="sending", claimed_at=long_ago, attempts=1)
    assert delivery.sweep()["revived"] == 1
    [d] = _rows(s.id)
    assert d.state == "queued" and d.last_error.startswith("the sending job stopped at ")
    assert d.last_error.endswith("sent again (it may arrive twice)")

    _set(d.id, state="sending", claimed_at=long_ago, attempts=2)  # killed again
    assert delivery.sweep()["revived"] == 0
    [d] = _rows(s.id)
    assert d.state == "failed" and "stopped again" in d.last_error and "may have gone out; not resent" in d.last_error

    _notice(s)
    delivery.prepare()
    d2 = _rows(s.id)[-1]
    _set(d2.id, state="sending", claimed_at=long_ago, created_at=datetime.now(UTC) - timedelta(days=3))
    delivery.sweep()
    d2 = _rows(s.id)[-1]
    assert d2.state == "failed" and d2.last_error.startswith("expired:")
    assert sms_gateway.messages == []


# -- the bot token ---------------------------------------------------------------------------------

def _linked(bot, chat_id):
    from portal.notifications import preferences

    s = gen_subscriber(phones=[])
    token = preferences.link_token(s.id)
    db.session.commit()
    bot.user_sends(chat_id, f"/start {token}")
    preferences.poll_telegram()
    return s


@pytest.mark.parametrize("fault", ["refused", "5xx", "unauthorized"])
def test_the_bot_token_is_in_no_reason_log_line_or_call_record(telegram_bot, caplog, fault):
    """The Bot API refuses the connection, answers 502, or says 401: the row's reason, every log
    line (urllib3's request lines included) and the audit record of the call name the failure,
    never the token; the message is retried (the channel's fault, not the subscriber's)."""
    s = _linked(telegram_bot, 5559001)
    _notice(s)
    d = _one_row(s)
    if fault == "refused":
        telegram_bot.down()
    elif fault == "5xx":
        telegram_bot.fail(f"upstream error at /bot{BOT_TOKEN}/sendMessage", status=502)
    else:
        telegram_bot.fail("Unauthorized", status=401)
    caplog.set_level(logging.DEBUG)
    with recording() as calls:
        assert delivery.deliver(d.id) == "retry"
    [d] = _rows(s.id)
    text = caplog.text + d.last_error + repr(calls)
    assert BOT_TOKEN not in text and BOT_TOKEN.split(":")[1] not in text
    assert "/bot***/sendMessage" in calls[0]["url"]
    assert {"refused": "ConnectionError", "5xx": "502", "unauthorized": "401"}[fault] in d.last_error
    if fault == "refused":
        assert "/bot***/" in caplog.text or "Starting new HTTP connection" in caplog.text
