"""A message that may have gone out is sent again at most once (issue 19's review): a gateway
slower than the channel's timeout, an SMTP server that takes DATA and answers late, a job killed
twice with a refusal between; a staff retry of an expired message gets a new give-up window; a
contract staff set to "do not block" gets no warning, with that reason; an SMTP password echoed
by the server (as typed or base64) is in no reason. Real SMTP server and HTTP emulators."""
from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from portal.billing import clock, notices
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Contract, NotificationDelivery
from portal.notifications import channels, delivery
from tests.builders import gen_staff, gen_subscriber
from tests.helpers import login, post
from tests.notifications_fixtures import SMS_API_ID, SMTP_LOGIN, SMTP_PASSWORD, Mailbox, forecast_warned_pair

pytestmark = pytest.mark.integration


def _notice(subscriber, event="blocked", data=None, contract=None):
    notices.record(subscriber_id=subscriber.id, contract_id=contract.id if contract else None, event=event,
                   data=data if data is not None else {"amount_to_unblock": "50.00"}, critical=True,
                   dedup_key=f"resend:{event}:{time.monotonic_ns()}")
    db.session.commit()
    delivery.prepare()


def _row(subscriber_id):
    db.session.rollback()
    return db.session.scalars(select(NotificationDelivery).where(NotificationDelivery.subscriber_id == subscriber_id)
                              .order_by(NotificationDelivery.id)).all()[-1]


def _set(delivery_id, **values):
    db.session.execute(update(NotificationDelivery).where(NotificationDelivery.id == delivery_id).values(**values))
    db.session.commit()


def _sms_channel(gateway, timeout):
    channels.save("sms", {"api_url": gateway.url, "api_id": SMS_API_ID, "sender": "ISP", "rate": "50",
                          "timeout": str(timeout), "enabled": True}, actor="test")
    db.session.commit()


def test_a_gateway_slower_than_the_timeout_gets_the_sms_at_most_twice(sms_gateway):
    """The gateway takes each SMS but answers 2 s later than the channel's 1 s timeout: the
    first timeout sends it again once ("may arrive twice"), the second fails the message "may have
    gone out; not resent" — not a copy every backoff until it is two days old."""
    _sms_channel(sms_gateway, 1)
    sms_gateway.latency = 2.0
    s = gen_subscriber(phones=["+79008880001"])
    _notice(s)
    d = _row(s.id)
    outcomes = []
    for _ in range(6):  # the job run again and again, as the sweep would while it is queued
        outcomes.append(delivery.deliver(d.id))
        _set(d.id, next_attempt_at=datetime.now(UTC))
    time.sleep(2.5)  # the gateway's late answers are in
    d = _row(s.id)
    assert outcomes[:2] == ["retry", "failed"] and set(outcomes[2:]) == {"not queued"}
    assert d.state == "failed" and d.resends == 1 and d.attempts == 2
    assert d.last_error.startswith("may have gone out; not resent") and "ReadTimeout" in d.last_error
    assert len(sms_gateway.messages) == 2


def test_a_refused_connection_is_still_retried_until_the_message_is_old(sms_gateway):
    """Nothing was sent when the gateway refuses the connection: retried again and again (no
    "may have gone out"), the resend count untouched."""
    s = gen_subscriber(phones=["+79008880002"])
    _notice(s)
    d = _row(s.id)
    sms_gateway.down()
    for _ in range(4):
        assert delivery.deliver(d.id) == "retry"
        _set(d.id, next_attempt_at=datetime.now(UTC))
    d = _row(s.id)
    assert d.state == "queued" and d.resends == 0 and "ConnectionError" in d.last_error
    assert "may" not in d.last_error


def test_an_smtp_server_that_answers_late_after_data_gets_the_mail_at_most_twice(smtp_server):
    """The mail server takes the message's DATA and answers 2 s later than the channel's 1 s
    timeout: sent again once, then failed "may have gone out; not resent"; the server has it
    twice, not once per backoff."""
    channels.save("email", {"host": "127.0.0.1", "port": str(smtp_server.port), "security": "starttls",
                            "login": SMTP_LOGIN, "password": SMTP_PASSWORD, "sender": "billing@isp.test",
                            "rate": "50", "timeout": "1", "enabled": True}, actor="test")
    db.session.commit()

    async def late(server, session, envelope):  # keeps the message, then answers too late
        answer = await Mailbox.handle_DATA(smtp_server, server, session, envelope)
        await asyncio.sleep(2)
        return answer
    smtp_server.handle_DATA = late
    s = gen_subscriber(email="late@example.test", phones=[])
    _notice(s)
    d = _row(s.id)
    outcomes = []
    for _ in range(4):
        outcomes.append(delivery.deliver(d.id))
        _set(d.id, next_attempt_at=datetime.now(UTC))
    time.sleep(2.5)
    d = _row(s.id)
    assert outcomes == ["retry", "failed", "not queued", "not queued"]
    assert d.state == "failed" and d.last_error.startswith("may have gone out; not resent")
    assert len(smtp_server.messages) == 2


def test_a_job_killed_twice_with_a_refusal_between_is_not_sent_a_third_time(sms_gateway):
    """kill -> revive (sent again) -> the gateway answers 502 (a new reason on the row) -> kill:
    the sweep fails it instead of sending it once more; the count survives the 502."""
    s = gen_subscriber(phones=["+79008880003"])
    _notice(s)
    d = _row(s.id)
    long_ago = datetime.now(UTC) - timedelta(seconds=delivery.STALE_SENDING + 5)
    _set(d.id, state="sending", claimed_at=long_ago, attempts=1)
    assert delivery.sweep()["revived"] == 1
    sms_gateway.fail("Bad Gateway", status=502, times=1)
    _set(d.id, next_attempt_at=datetime.now(UTC))
    assert delivery.deliver(d.id) == "retry"
    d = _row(s.id)
    assert d.last_error.startswith("HTTP 502") and d.resends == 1
    _set(d.id, state="sending", claimed_at=long_ago)
    assert delivery.sweep()["revived"] == 0
    d = _row(s.id)
    assert d.state == "failed" and "may have gone out; not resent" in d.last_error
    assert sms_gateway.messages == []


def test_staff_send_again_an_expired_message_with_a_new_give_up_window(client, sms_gateway):
    """A message failed as expired (two days of outage); staff press "Send again" and the gateway
    is busy once more: it is retried (not expired at once), its old reason gone."""
    s = gen_subscriber(phones=["+79008880004"])
    _notice(s)
    d = _row(s.id)
    sms_gateway.down()
    _set(d.id, created_at=datetime.now(UTC) - timedelta(days=3), resends=1)
    assert delivery.deliver(d.id) == "failed"
    assert _row(s.id).last_error.startswith("expired:")
    gen_staff("manager1", role="manager")
    login(client, "manager1")
    sms_gateway.up()
    sms_gateway.fail("Service Unavailable", status=503, times=1)
    assert post(client, f"/notification-deliveries/{d.id}/retry", {}).status_code == 303  # no worker runs
    d = _row(s.id)
    assert d.state == "queued" and d.last_error is None and d.attempts == 0 and d.resends == 0
    assert datetime.now(UTC) - d.created_at < timedelta(minutes=1)
    assert delivery.deliver(d.id) == "retry"
    _set(d.id, next_attempt_at=datetime.now(UTC))
    assert delivery.deliver(d.id) == "sent"
    assert [m["to"] for m in sms_gateway.messages] == ["79008880004"]


def test_a_contract_staff_set_not_to_block_gets_no_warning_with_that_reason(sms_gateway):
    """A forecast warning is queued, then staff set the contract to "do not block" (another one
    to "do not block until" a day ahead): both are cancelled saying so, not "paid since"."""
    today = date(2025, 1, 27)
    made = forecast_warned_pair(today, "+7900888010", "nb-")
    with clock.as_of(today):
        rows = [_row(c.subscriber_id) for c in made]
        db.session.execute(update(Contract).where(Contract.id == made[0].id).values(do_not_block=True))
        until = today + timedelta(days=10)
        db.session.execute(update(Contract).where(Contract.id == made[1].id).values(do_not_block_until=until))
        db.session.commit()
        assert [delivery.deliver(r.id) for r in rows] == ["cancelled", "cancelled"]
    assert _row(made[0].subscriber_id).last_error == "cancelled: staff set the contract not to be blocked"
    assert _row(made[1].subscriber_id).last_error == \
        f"cancelled: staff set the contract not to be blocked until {until.isoformat()}"
    assert sms_gateway.messages == []


def test_an_smtp_server_that_echoes_the_credentials_shows_no_password(smtp_server):
    """The server refuses the login and echoes what it got (AUTH PLAIN's base64, the password):
    the row's reason says 535, with neither the password nor its base64 forms."""
    from aiosmtpd.smtp import AuthResult

    plain = base64.b64encode(f"\0{SMTP_LOGIN}\0{SMTP_PASSWORD}".encode()).decode()
    login_form = base64.b64encode(SMTP_PASSWORD.encode()).decode()

    def echo(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False,
                          message=f"535 5.7.8 rejected {plain} / {login_form} / {SMTP_PASSWORD}")
    smtp_server.controller.SMTP_kwargs["authenticator"] = echo  # each new session's
    s = gen_subscriber(email="echo@example.test", phones=[])
    _notice(s)
    d = _row(s.id)
    assert delivery.deliver(d.id) == "retry"
    d = _row(s.id)
    assert d.last_error.startswith("535") and "rejected" in d.last_error
    for secret in (SMTP_PASSWORD, plain, plain.rstrip("="), login_form):
        assert secret not in d.last_error


def test_a_channel_timeout_is_kept_below_the_jobs(ctx):
    """Staff cannot set a timeout a send could outlast the job with (the job stopped mid-call
    leaves it unknown whether the message went out)."""
    with pytest.raises(BillingError) as e:
        channels.save("sms", {"api_url": "https://sms.ru", "api_id": "x-api-id", "sender": "", "rate": "5",
                              "timeout": "60", "enabled": True}, actor="test")
    assert "timeout" in e.value.fields
    assert channels.MAX_TIMEOUT * 2 < delivery.JOB_TIMEOUT  # connect + read of one HTTP call
