"""Notifications through outages, with the real RQ worker in its own process: the SMS gateway
down then up, Redis stopped (and back empty) — is every message delivered, and only once?
The sweep (``delivery.sweep``, the scheduler's periodic job) is run by the test as the
scheduler would, so the test decides when it looks."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from portal.billing import notices
from portal.extensions import db
from portal.models import Notice, NotificationDelivery
from portal.notifications import delivery
from tests.builders import gen_subscriber
from tests.platform_fixtures import wait_for

pytestmark = pytest.mark.integration


def _rows():
    return db.session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)).all()


def _swept(check):
    """A wait_for check that runs the sweep first, as the scheduler does every few seconds."""
    def run():
        delivery.sweep()
        return check()
    return run


def test_sms_sent_while_the_gateway_is_down_arrive_once_when_it_is_back(sms_gateway, processes):
    """The gateway is down when three payments are recorded: do the jobs retry with backoff, the
    failure show on the rows meanwhile, and each SMS arrive exactly once after the gateway is up?"""
    # pauses of 1, 2, 3, 3 ... s: eight attempts take longer than the test's look at two of them
    processes.start("jobs.worker", SYNC_BACKOFF_BASE=1, SYNC_BACKOFF_MAX=3)
    sms_gateway.down()
    subscribers = [gen_subscriber(phones=[f"+7900555000{n}"]) for n in range(3)]
    for s in subscribers:
        notices.record(subscriber_id=s.id, event="payment_received", critical=True,
                       data={"amount": "100.00", "paid_at": "2026-12-03T10:00:00+00:00"}, dedup_key=f"pay-{s.id}")
    db.session.commit()  # the hand-off: a prepare job, then a deliver job per row

    def tried_twice():
        rows = _rows()
        return len(rows) == 3 and all(r.attempts >= 2 and r.state == "queued" for r in rows) and rows
    rows = wait_for(_swept(tried_twice), timeout=60, what="two failed attempts per SMS")
    assert all("ConnectionError" in r.last_error for r in rows)
    assert sms_gateway.messages == []

    sms_gateway.up()
    wait_for(_swept(lambda: all(r.state == "sent" for r in _rows())), timeout=60, what="every SMS sent")
    for _ in range(3):  # later sweeps and stray jobs send nothing again
        delivery.sweep()
        time.sleep(0.3)
    assert sorted(m["to"] for m in sms_gateway.messages) == [f"7900555000{n}" for n in range(3)]
    assert all(r.state == "sent" for r in _rows())


def test_an_outage_longer_than_the_old_eight_attempts_loses_nothing(sms_gateway, processes):
    """The gateway stays down through a dozen attempts (the portal used to give up after eight):
    is the SMS still waiting, and delivered once when the gateway is back?"""
    processes.start("jobs.worker", SYNC_BACKOFF_BASE=0.2, SYNC_BACKOFF_MAX=0.4)
    sms_gateway.down()
    s = gen_subscriber(phones=["+79005557001"])
    notices.record(subscriber_id=s.id, event="blocked", critical=True, data={"amount_to_unblock": "10.00"},
                   dedup_key=f"long-outage-{s.id}")
    db.session.commit()
    [row] = wait_for(_swept(lambda: [r for r in _rows() if r.attempts >= 12 and r.state == "queued"]),
                     timeout=90, what="twelve failed attempts, the SMS still queued")
    assert "ConnectionError" in row.last_error and sms_gateway.messages == []
    sms_gateway.up()
    wait_for(_swept(lambda: _rows()[0].state == "sent"), timeout=60, what="the SMS sent")
    assert [m["to"] for m in sms_gateway.messages] == ["79005557001"]


def test_notices_recorded_while_redis_is_down_are_delivered_once_when_it_is_back(sms_gateway, processes,
                                                                                  own_redis):
    """Redis crashes (and comes back empty) while a notice is recorded and while another one is
    prepared: does the commit stand, nothing reach RQ, and each SMS arrive once Redis is back?"""
    processes.start("jobs.worker", REDIS_URL=own_redis.url)
    a, b = gen_subscriber(phones=["+79001110001"]), gen_subscriber(phones=["+79001110002"])
    own_redis.crash()
    for s in (a, b):
        notices.record(subscriber_id=s.id, event="blocked", critical=True, data={"amount_to_unblock": "50.00"},
                       dedup_key=f"blocked-{s.id}")
        db.session.commit()  # the hand-off fails: logged, the commit stands
    assert delivery.prepare([_notice_of(a.id)]) == 1  # one prepared while Redis is down
    [row] = _rows()
    assert row.state == "queued" and row.enqueued_at is None  # handed to nobody: the sweep will
    assert db.session.scalar(select(Notice.processed_at).where(Notice.subscriber_id == b.id)) is None

    own_redis.start()
    wait_for(_swept(lambda: len(_rows()) == 2 and all(r.state == "sent" for r in _rows())), timeout=60,
             what="both SMS sent after Redis is back")
    for _ in range(3):
        delivery.sweep()
        time.sleep(0.3)
    assert sorted(m["to"] for m in sms_gateway.messages) == ["79001110001", "79001110002"]


def _notice_of(subscriber_id: int) -> int:
    return db.session.scalar(select(Notice.id).where(Notice.subscriber_id == subscriber_id))


def test_a_burst_beyond_the_channel_rate_is_sent_without_the_sweep(sms_gateway, processes):
    """Eight SMS at once on a channel allowed 2 a second: the jobs past the rate are postponed,
    and the sending jobs pull them in turn: are all eight delivered, once each, with no sweep?"""
    from portal.notifications import channels

    channels.save("sms", {"api_url": sms_gateway.url, "api_id": "A1B2C3D4-sms-api-id", "sender": "ISP", "rate": "2",
                          "timeout": "5", "enabled": True}, actor="test")
    db.session.commit()
    processes.start("jobs.worker")
    subscribers = [gen_subscriber(phones=[f"+7900666000{n}"]) for n in range(8)]
    for s in subscribers:
        notices.record(subscriber_id=s.id, event="blocked", critical=True, data={"amount_to_unblock": "10.00"},
                       dedup_key=f"burst-{s.id}")
    db.session.commit()
    wait_for(lambda: len(_rows()) == 8 and all(r.state == "sent" for r in _rows()), timeout=60,
             what="eight SMS sent by the jobs alone")
    assert sorted(m["to"] for m in sms_gateway.messages) == [f"7900666000{n}" for n in range(8)]
