"""Delivery: notices become one delivery row per channel the subscriber gets, and RQ jobs send
them — the outbox pattern of ``portal.platforms.outbox``, applied to messages.

* ``prepare`` takes unprocessed notices, honours preferences (``preferences.channels_for``),
  renders each message in the subscriber's language (``templates.render``), writes the rows
  queued and marks the notices processed, in one transaction. After its commit the rows are
  handed to RQ (``handoff``); if Redis is down then, ``sweep`` hands them over later.
* ``deliver(id)`` (one job per row, idempotent) waits for the channel's rate slot, claims the
  row with a conditional UPDATE (queued -> sending: only one job can), calls the service
  outside any transaction, and records sent, a retry (backoff SYNC_BACKOFF_BASE * 2^(n-1) up to
  SYNC_BACKOFF_MAX, as the platforms' sync; Telegram's retry_after honoured, not counted as
  an attempt) or failed (the recipient cannot be reached, or MAX_ATTEMPTS used) with the
  service's reason.
* ``sweep`` (periodic, jobs/schedules.py) wakes the prepare job for notices nobody took,
  enqueues due rows not waiting in RQ, and gives back rows a killed job left in ``sending`` (after STALE_SENDING:
  such a message may go twice — the service may have taken it before the job died).
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import current_app
from rq import Queue
from sqlalchemy import or_, select, update

from ..db_setup import dialect_insert
from ..extensions import db
from ..models import (
    Contract,
    Notice,
    NotificationDelivery,
    NotificationPreference,
    Subscriber,
    utcnow,
)
from ..queue import enqueue_once, get_queue
from . import channels, preferences, ratelimit, sms, smtp, telegram
from .senders import SendError, Sent

log = logging.getLogger(__name__)

ROWS_KEY = "notification_deliveries"  # session.info: (id, critical) of the rows this transaction wrote
DELIVER_JOB = "jobs.notifications.deliver"
PREPARE_JOB = "jobs.notifications.prepare"
BATCH = 500             # notices per prepare transaction
SWEEP_LIMIT = 10000     # rows enqueued per sweep; the next sweep takes the rest
MAX_ATTEMPTS = 8
STALE_SENDING = 600     # seconds a row may stay "sending" before the sweep gives it back
WAIT_INLINE = 1.0       # a job waits this long for its rate slot; longer: the row is postponed
JOB_TIMEOUT = 120
ENQUEUE_CHUNK = 500    # jobs per pipelined hand-off


def queue_for(critical: bool) -> str:
    """Service-critical messages go before the rest (a bulk or a forecast run of thousands)."""
    return "default" if critical else "low"


def job_id(delivery_id: int) -> str:
    return f"notify-{delivery_id}"


# -- notices -> deliveries ------------------------------------------------------------------------

def prepare(notice_ids: list[int] | None = None, limit: int = BATCH) -> int:
    """Turn up to ``limit`` unprocessed notices (these ``notice_ids`` only, when given) into
    deliveries, and commit. Returns the number of notices taken."""
    q = select(Notice).where(Notice.processed_at.is_(None)).order_by(Notice.id).limit(limit)
    if notice_ids is not None:
        q = q.where(Notice.id.in_(notice_ids))
    if db.session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)  # two sweeps take different notices
    notices = db.session.scalars(q).all()
    if not notices:
        db.session.rollback()
        return 0
    subscriber_ids = {n.subscriber_id for n in notices}
    subscribers = {s.id: s for s in db.session.scalars(select(Subscriber).where(Subscriber.id.in_(subscriber_ids)))}
    prefs = {p.subscriber_id: p for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.subscriber_id.in_(subscriber_ids)))}
    contract_ids = {n.contract_id for n in notices if n.contract_id}
    contracts = {c.id: c for c in db.session.scalars(select(Contract).where(Contract.id.in_(contract_ids)))} \
        if contract_ids else {}
    enabled = channels.enabled_kinds()
    table = NotificationDelivery.__table__
    now = utcnow()
    planned: list[dict] = []
    for notice in notices:
        subscriber = subscribers[notice.subscriber_id]
        pref = prefs.get(notice.subscriber_id)
        for kind, address in preferences.channels_for(subscriber, pref, notice.critical, enabled):
            values = dict(notice_id=notice.id, subscriber_id=subscriber.id, channel=kind, address=str(address),
                          state="queued", attempts=0, next_attempt_at=now, enqueued_at=now, created_at=now,
                          subject=None, body="", last_error=None)
            try:
                rendered = _render(notice, kind, preferences.locale_of(pref, subscriber), subscriber,
                                   contracts.get(notice.contract_id))
                values.update(subject=rendered.subject[:300] or None, body=rendered.body)
            except Exception as e:  # a broken template: the log says so, the others go out
                values.update(state="failed", last_error=f"template: {e}"[:1000], enqueued_at=None)
            planned.append(values)
    critical = {n.id: n.critical for n in notices}
    made: list[tuple[int, bool]] = []
    if planned:  # one statement compiled once, sent as multi-row batches (insertmanyvalues)
        stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=["notice_id", "channel"]).returning(
            table.c.id, table.c.notice_id, table.c.state)
        made = [(i, critical[n]) for i, n, state in db.session.execute(stmt, planned) if state == "queued"]
    db.session.execute(update(Notice).where(Notice.id.in_([n.id for n in notices])).values(processed_at=now))
    db.session.info.setdefault(ROWS_KEY, []).extend(made)
    db.session.commit()
    return len(notices)


def wake_prepare() -> bool:
    """One ``prepare`` job for every pending notice (one waits at a time; a running one that may
    have looked before the latest commit gets a follow-up)."""
    return enqueue_once("default", PREPARE_JOB, job_id="notify-prepare", running_covers=False, result_ttl=0,
                        job_timeout=JOB_TIMEOUT * 10)


def prepare_pending() -> int:
    """Every unprocessed notice, batch after batch (the hand-off's job)."""
    total = 0
    while True:
        taken = prepare()
        total += taken
        if taken < BATCH:
            return total


def _render(notice: Notice, kind: str, locale: str, subscriber: Subscriber, contract: Contract | None):
    from .templates import render

    context = {**(notice.data or {}), "subscriber_name": subscriber.full_name}
    if contract is not None:
        context.update(contract_number=contract.number, balance=str(contract.balance))
    return render(notice.event, kind, locale, context)


# -- sending ------------------------------------------------------------------------------------

def send(kind: str, channel: channels.Channel, address: str, subject: str | None, body: str) -> Sent:
    """One message through one channel (raises SendError)."""
    if kind == "email":
        return smtp.send(channel, address, subject or "", body)
    if kind == "sms":
        return sms.SmsClient(channel).send(address, body)
    return telegram.TelegramClient(channel).send(address, body)


def deliver(delivery_id: int) -> str:
    """Send one queued, due delivery once (the job; safe to run twice). Returns what happened."""
    d = db.session.get(NotificationDelivery, delivery_id)
    state = (d.state, d.next_attempt_at, d.channel, d.address, d.subject, d.body) if d is not None else None
    db.session.rollback()
    if state is None or state[0] != "queued":
        return "not queued"
    _, due, kind, address, subject, body = state
    early = (due - utcnow()).total_seconds()
    if early > WAIT_INLINE:
        return "not due"
    if early > 0:  # pulled a moment before its time (``_pull_next``)
        time.sleep(early)
    channel = channels.load(kind)
    db.session.rollback()
    if channel is None:
        if not _claim(delivery_id):
            return "taken"
        _failed(delivery_id, "the channel is not configured or is disabled", retry=True)
        return "no channel"
    wait = ratelimit.take(kind, channel.rate, WAIT_INLINE)
    if wait > WAIT_INLINE:  # the channel is busy (or paused by the service): come back then
        _postpone(delivery_id, wait)
        return "postponed"
    if wait > 0:
        time.sleep(wait)
    if not _claim(delivery_id):
        return "taken"
    try:
        outcome = _send_claimed(delivery_id, kind, channel, address, subject, body)
    finally:
        _pull_next(kind)
    return outcome


def _send_claimed(delivery_id, kind, channel, address, subject, body) -> str:
    try:
        sent = send(kind, channel, address, subject, body)
    except SendError as e:
        if e.retry_after is not None:
            ratelimit.pause(kind, e.retry_after)
        return _failed(delivery_id, str(e), retry=e.retry, retry_after=e.retry_after)
    except Exception as e:  # a bug or an unexpected answer: recorded on the row, retried
        log.exception("delivery %s: unexpected error", delivery_id)
        return _failed(delivery_id, f"{type(e).__name__}: {e}", retry=True)
    with db.engine.begin() as conn:
        conn.execute(update(NotificationDelivery.__table__)
                     .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == "sending")
                     .values(state="sent", sent_at=utcnow(), external_id=(sent.external_id or "")[:100] or None,
                             last_error=None))
    return "sent"


def _pull_next(kind: str) -> None:
    """Keep the channel busy at its rate: after a send, hand RQ the channel's next row due within
    WAIT_INLINE that no job holds (one postponed for the rate, say), without waiting for the sweep. Taken by a
    conditional UPDATE, so two jobs never pull the same row."""
    t, n = NotificationDelivery.__table__, Notice.__table__.c
    now = utcnow()
    try:
        with db.engine.begin() as conn:
            row = conn.execute(select(t.c.id, n.critical).join(Notice.__table__, n.id == t.c.notice_id)
                               .where(t.c.channel == kind, t.c.state == "queued",
                                      t.c.next_attempt_at <= now + timedelta(seconds=WAIT_INLINE),
                                      t.c.enqueued_at.is_(None))
                               .order_by(t.c.next_attempt_at).limit(1)).first()
            if row is None or conn.execute(update(t).where(t.c.id == row[0], t.c.enqueued_at.is_(None))
                                           .values(enqueued_at=now)).rowcount != 1:
                return
        enqueue_once(queue_for(row[1]), DELIVER_JOB, row[0], job_id=job_id(row[0]), result_ttl=0,
                     job_timeout=JOB_TIMEOUT)
    except Exception:  # the sweep hands it over instead
        log.warning("notifications: the next %s message not handed over now", kind, exc_info=True)


def _claim(delivery_id: int) -> bool:
    """queued -> sending, counting the attempt: True for the one job that did it."""
    now = utcnow()
    with db.engine.begin() as conn:
        return conn.execute(update(NotificationDelivery.__table__)
                            .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == "queued",
                                   NotificationDelivery.next_attempt_at <= now)
                            .values(state="sending", claimed_at=now,
                                    attempts=NotificationDelivery.attempts + 1)).rowcount == 1


def _postpone(delivery_id: int, seconds: float) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(NotificationDelivery.__table__)
                     .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == "queued")
                     .values(next_attempt_at=utcnow() + timedelta(seconds=seconds), enqueued_at=None))


def backoff(attempts: int) -> float:
    cfg = current_app.config
    return min(cfg["SYNC_BACKOFF_BASE"] * 2 ** (max(attempts, 1) - 1), cfg["SYNC_BACKOFF_MAX"])


def _failed(delivery_id: int, error: str, *, retry: bool, retry_after: float | None = None) -> str:
    """A sending row after a failed attempt: queued again when due, or failed for good."""
    t = NotificationDelivery.__table__
    with db.engine.begin() as conn:
        attempts = conn.execute(select(t.c.attempts).where(t.c.id == delivery_id)).scalar() or 0
        if retry_after is not None:  # the service's own wait: not the message's fault
            values = dict(state="queued", attempts=max(attempts - 1, 0),
                          next_attempt_at=utcnow() + timedelta(seconds=retry_after))
        elif retry and attempts < MAX_ATTEMPTS:
            values = dict(state="queued", next_attempt_at=utcnow() + timedelta(seconds=backoff(attempts)))
        else:
            values = dict(state="failed")
        conn.execute(update(t).where(t.c.id == delivery_id, t.c.state == "sending")
                     .values(last_error=error[:1000], enqueued_at=None, **values))
    return "retry" if values["state"] == "queued" else "failed"


# -- hand-off to RQ and the sweep ---------------------------------------------------------------

def enqueue(rows: list[tuple[int, bool]], mark: bool = False) -> int:
    """A job for each (id, critical) row; rows that did not reach RQ are left un-enqueued for
    the sweep (``mark``: the rows are not marked yet, mark those that did)."""
    done: list[int] = []
    try:
        for delivery_id, critical in rows:
            enqueue_once(queue_for(critical), DELIVER_JOB, delivery_id, job_id=job_id(delivery_id),
                         result_ttl=0, job_timeout=JOB_TIMEOUT)
            done.append(delivery_id)
    finally:
        reached = set(done)
        if mark:
            _mark(done, utcnow())
        elif len(done) < len(rows):
            _mark([i for i, _ in rows if i not in reached], None)
    return len(done)


def enqueue_new(rows: list[tuple[int, bool]]) -> int:
    """The hand-off of rows just written: no job can exist for them yet, so they go to RQ in
    pipelined batches (one round trip per ENQUEUE_CHUNK instead of one per row); rows of a
    batch that did not reach RQ are left for the sweep."""
    by_queue: dict[str, list[int]] = {}
    for delivery_id, critical in rows:
        by_queue.setdefault(queue_for(critical), []).append(delivery_id)
    done: list[int] = []
    try:
        for name, ids in by_queue.items():
            queue = get_queue(name)
            for start in range(0, len(ids), ENQUEUE_CHUNK):
                chunk = ids[start:start + ENQUEUE_CHUNK]
                queue.enqueue_many([Queue.prepare_data(DELIVER_JOB, (i,), job_id=job_id(i), result_ttl=0,
                                                       timeout=JOB_TIMEOUT) for i in chunk])
                done += chunk
    finally:
        if len(done) < len(rows):
            reached = set(done)
            _mark([i for i, _ in rows if i not in reached], None)
    return len(done)


def _mark(ids: list[int], at) -> None:
    if not ids:
        return
    t = NotificationDelivery.__table__
    with db.engine.begin() as conn:
        for start in range(0, len(ids), 1000):
            conn.execute(update(t).where(t.c.id.in_(ids[start:start + 1000])).values(enqueued_at=at))


def sweep() -> dict:
    """The safety net: notices nobody prepared, rows never handed to RQ (or long ago), rows a
    killed job left in ``sending``."""
    now = utcnow()
    t = NotificationDelivery.__table__
    with db.engine.begin() as conn:
        revived = conn.execute(update(t).where(t.c.state == "sending",
                                               t.c.claimed_at < now - timedelta(seconds=STALE_SENDING))
                               .values(state="queued", enqueued_at=None,
                                       last_error="the sending job stopped; sent again")).rowcount
    # notices nobody prepared (the hand-off missed them, or a set-based pass inserted them): the
    # prepare job takes them on its own queue, so the sweep stays short on ``high``
    with db.engine.connect() as conn:
        waiting = conn.execute(select(Notice.__table__.c.id).where(Notice.__table__.c.processed_at.is_(None))
                               .limit(1)).first() is not None
        conn.rollback()
    if waiting:
        wake_prepare()
    stale = now - timedelta(seconds=current_app.config["OUTBOX_REENQUEUE_AFTER"])
    n = Notice.__table__.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, n.critical).join(Notice.__table__, n.id == t.c.notice_id)
                            .where(t.c.state == "queued", t.c.next_attempt_at <= now,
                                   or_(t.c.enqueued_at.is_(None), t.c.enqueued_at < stale))
                            .order_by(t.c.next_attempt_at).limit(SWEEP_LIMIT)).all()
        conn.rollback()
    return {"notices_waiting": waiting, "enqueued": enqueue([tuple(r) for r in rows], mark=True), "revived": revived}
