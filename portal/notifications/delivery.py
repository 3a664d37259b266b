"""Delivery: notices become one delivery row per channel the subscriber gets, and RQ jobs send
them — the outbox pattern of ``portal.platforms.outbox``, applied to messages.

* ``prepare`` takes unprocessed notices, honours preferences (``preferences.channels_for``),
  renders each message in the subscriber's language (``templates.render``), writes the rows
  queued and marks the notices processed, in one transaction. After its commit the rows are
  handed to RQ (``handoff``); if Redis is down then, ``sweep`` hands them over later.
* ``deliver(id)`` (one job per row, idempotent) first asks whether a warning still holds
  (``relevance.obsolete``: a low-balance, grace or block warning the subscriber has paid since
  is ``cancelled``, with the reason, not sent) and whether a non-critical message falls in the
  quiet hours (NOTIFY_QUIET_HOURS in BILLING_TZ: postponed to their end); then waits for the
  channel's rate slot, claims the row with a conditional UPDATE (queued -> sending: only one job
  can), calls the service outside any transaction, and records sent, a retry or failed with the
  service's reason.
* Retries: whatever is the service's or the channel's fault (down, 5xx, a timeout, a wrong
  secret, the channel switched off) is retried with backoff SYNC_BACKOFF_BASE * 2^(n-1) up to
  SYNC_BACKOFF_MAX (as the platforms' sync; Telegram's retry_after honoured, not counted as an
  attempt) until the message is NOTIFY_GIVE_UP_AFTER hours old, then failed as ``expired: …``:
  an outage of a day loses nothing, and a two-day-old message is not sent. Only what is the
  recipient's (a refused address or number, a bot blocked by the user; ``SendError.retry``
  False) fails at once. An error after the request went out (a read timeout, the connection
  dropped after sending, the job stopped mid-call; ``SendError.maybe_sent``) may mean the
  message went out: it is sent again at most once (``resends``), then failed "may have gone out;
  not resent" — a slow gateway must not get a copy every backoff for two days.
* ``sweep`` (periodic, jobs/schedules.py) wakes the prepare job for notices nobody took,
  enqueues due rows not waiting in RQ, and gives back rows a killed job left in ``sending``
  (after STALE_SENDING: such a message may go twice — the service may have taken it before the
  job died — and the log says so). A row sent again once already (``resends``: after a killed
  job or a timeout, whatever came between), or past NOTIFY_GIVE_UP_AFTER, is failed instead: no
  loop of sends.
"""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from datetime import time as day_time

from flask import current_app
from rq import Queue
from sqlalchemy import or_, select, update

from ..billing import clock
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
from . import channels, preferences, ratelimit, relevance, sms, smtp, telegram
from .senders import SendError, Sent

log = logging.getLogger(__name__)

ROWS_KEY = "notification_deliveries"  # session.info: (id, critical) of the rows this transaction wrote
DELIVER_JOB = "jobs.notifications.deliver"
PREPARE_JOB = "jobs.notifications.prepare"
BATCH = 500             # notices per prepare transaction
SWEEP_LIMIT = 10000     # rows enqueued per sweep; the next sweep takes the rest
STALE_SENDING = 600     # seconds a row may stay "sending" before the sweep gives it back
REVIVED = "the sending job stopped"  # how last_error starts on a row the sweep gave back
NOT_RESENT = "may have gone out; not resent"  # the reason of a row that may have gone out twice
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
    quiet = quiet_until(now)  # non-critical rows wait for it, handed to RQ by the sweep then
    planned: list[dict] = []
    for notice in notices:
        subscriber = subscribers[notice.subscriber_id]
        pref = prefs.get(notice.subscriber_id)
        due = quiet if quiet is not None and not notice.critical else now
        for kind, address in preferences.channels_for(subscriber, pref, notice.critical, enabled):
            values = dict(notice_id=notice.id, subscriber_id=subscriber.id, channel=kind, address=str(address),
                          state="queued", attempts=0, next_attempt_at=due, enqueued_at=now if due == now else None,
                          created_at=now, subject=None, body="", last_error=None)
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
            table.c.id, table.c.notice_id, table.c.state, table.c.enqueued_at)
        made = [(i, critical[n]) for i, n, state, handed in db.session.execute(stmt, planned)
                if state == "queued" and handed is not None]
    db.session.execute(update(Notice).where(Notice.id.in_([n.id for n in notices])).values(processed_at=now))
    db.session.info.setdefault(ROWS_KEY, []).extend(made)
    db.session.commit()
    return len(notices)


def wake_prepare() -> bool:
    """One ``prepare`` job for every pending notice (one waits at a time; a running one that may
    have looked before the latest commit gets a follow-up)."""
    name, func, args, jid, running_covers, options = prepare_call()
    return enqueue_once(name, func, *args, job_id=jid, running_covers=running_covers, **options)


def prepare_call() -> tuple:
    """``wake_prepare``'s arguments of enqueue_once, as a call of queue.enqueue_once_many (the
    after-commit hand-off)."""
    return "default", PREPARE_JOB, (), "notify-prepare", False, {"result_ttl": 0, "job_timeout": JOB_TIMEOUT * 10}


def prepare_pending() -> int:
    """Every unprocessed notice, batch after batch (the hand-off's job)."""
    total = 0
    while True:
        taken = prepare()
        total += taken
        if taken < BATCH:
            return total


def _render(notice: Notice, kind: str, locale: str, subscriber: Subscriber, contract: Contract | None):
    from .templates import context_for, render

    # the notice's data, the subscriber's and contract's fields, and the links (pay_url)
    return render(notice.event, kind, locale, context_for(subscriber, contract, notice.data, event=notice.event))


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
    t, n = NotificationDelivery.__table__.c, Notice.__table__.c
    row = db.session.execute(select(t.state, t.next_attempt_at, t.channel, t.address, t.subject, t.body,
                                    n.critical, n.event, n.contract_id, n.data)
                             .join_from(NotificationDelivery.__table__, Notice.__table__, n.id == t.notice_id)
                             .where(t.id == delivery_id)).first()
    db.session.rollback()
    if row is None or row.state != "queued":
        return "not queued"
    early = (row.next_attempt_at - utcnow()).total_seconds()
    if early > WAIT_INLINE:
        return "not due"
    if early > 0:  # pulled a moment before its time (``_pull_next``)
        time.sleep(early)
    kind, address, subject, body = row.channel, row.address, row.subject, row.body
    quiet = None if row.critical else quiet_until(utcnow())
    if quiet is not None:  # a retry or a pulled row that fell into the night
        _postpone(delivery_id, (quiet - utcnow()).total_seconds())
        return "quiet hours"
    reason = relevance.obsolete(row.event, row.contract_id, row.data or {})
    db.session.rollback()
    if reason is not None:
        return _cancel(delivery_id, reason)
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
        _pull_next(kind, exclude=delivery_id)
    return outcome


def _send_claimed(delivery_id, kind, channel, address, subject, body) -> str:
    try:
        sent = send(kind, channel, address, subject, body)
    except SendError as e:
        if e.retry_after is not None:
            ratelimit.pause(kind, e.retry_after)
        return _failed(delivery_id, str(e), retry=e.retry, retry_after=e.retry_after, maybe_sent=e.maybe_sent)
    except Exception as e:  # a bug, an unexpected answer, RQ's JobTimeoutException mid-call: retried,
        log.exception("delivery %s: unexpected error", delivery_id)  # but it may have gone out
        return _failed(delivery_id, f"{type(e).__name__}: {e}", retry=True, maybe_sent=True)
    with db.engine.begin() as conn:
        conn.execute(update(NotificationDelivery.__table__)
                     .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == "sending")
                     .values(state="sent", sent_at=utcnow(), external_id=(sent.external_id or "")[:100] or None,
                             last_error=None))
    return "sent"


def _pull_next(kind: str, exclude: int) -> None:
    """Keep the channel busy at its rate: after a send, hand RQ the channel's next row due within
    WAIT_INLINE that no job holds (one postponed for the rate, say), without waiting for the sweep. Taken by a
    conditional UPDATE, so two jobs never pull the same row. Never the row this job just handled
    (``exclude``, a retry due soon): its job id is still running, RQ would skip the enqueue and the
    row, marked handed over, would wait OUTBOX_REENQUEUE_AFTER for the sweep; left un-enqueued, the
    next pull or sweep takes it."""
    t, n = NotificationDelivery.__table__, Notice.__table__.c
    now = utcnow()
    try:
        with db.engine.begin() as conn:
            row = conn.execute(select(t.c.id, n.critical).join(Notice.__table__, n.id == t.c.notice_id)
                               .where(t.c.channel == kind, t.c.state == "queued", t.c.id != exclude,
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


def _cancel(delivery_id: int, reason: str) -> str:
    """A queued warning that no longer holds: ``cancelled`` with the reason, never sent."""
    with db.engine.begin() as conn:
        done = conn.execute(update(NotificationDelivery.__table__)
                            .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == "queued")
                            .values(state="cancelled", last_error=reason[:1000], enqueued_at=None)).rowcount
    return "cancelled" if done else "taken"


def quiet_until(now: datetime) -> datetime | None:
    """The end (UTC) of the quiet hours (NOTIFY_QUIET_HOURS, "HH:MM-HH:MM" in BILLING_TZ; it
    may span midnight) when ``now`` falls in them, else None."""
    spec = current_app.config.get("NOTIFY_QUIET_HOURS") or ""
    if not spec:
        return None
    start, end = (day_time.fromisoformat(p) for p in spec.split("-"))
    tz = clock.tz()
    local = now.astimezone(tz)
    at = local.time().replace(tzinfo=None)
    inside = start <= at < end if start <= end else (at >= start or at < end)
    if not inside:
        return None
    day = local.date() if at < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)


def _postpone(delivery_id: int, seconds: float) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(NotificationDelivery.__table__)
                     .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == "queued")
                     .values(next_attempt_at=utcnow() + timedelta(seconds=seconds), enqueued_at=None))


def backoff(attempts: int) -> float:
    cfg = current_app.config
    return min(cfg["SYNC_BACKOFF_BASE"] * 2 ** (max(attempts, 1) - 1), cfg["SYNC_BACKOFF_MAX"])


def give_up_at(created_at: datetime) -> datetime:
    """When a message made at ``created_at`` is too old to send (NOTIFY_GIVE_UP_AFTER hours)."""
    return created_at + timedelta(hours=current_app.config["NOTIFY_GIVE_UP_AFTER"])


def expired(error: str) -> str:
    hours = current_app.config["NOTIFY_GIVE_UP_AFTER"]
    return f"expired: not sent within {hours:g} h; the last attempt: {error}"


def _failed(delivery_id: int, error: str, *, retry: bool, retry_after: float | None = None,
            maybe_sent: bool = False) -> str:
    """A sending row after a failed attempt: queued again when due, or failed for good (the
    recipient's fault at once; the service's or the channel's once the message is too old; one
    that may have gone out (``maybe_sent``) once it was sent again after that already)."""
    t = NotificationDelivery.__table__
    now = utcnow()
    with db.engine.begin() as conn:
        attempts, created, resends = conn.execute(select(t.c.attempts, t.c.created_at, t.c.resends)
                                                  .where(t.c.id == delivery_id)).first()
        deadline = give_up_at(created)
        if not retry:
            values = dict(state="failed")
        elif maybe_sent and resends >= 1:
            values = dict(state="failed")
            error = f"{NOT_RESENT} (sent again once already); the last attempt: {error}"
        elif now >= deadline:
            values = dict(state="failed")
            error = expired(error)
        else:
            # the service's own wait is not the message's fault: not counted as an attempt
            wait = retry_after if retry_after is not None else backoff(attempts)
            values = dict(state="queued", next_attempt_at=min(now + timedelta(seconds=wait), deadline))
            if retry_after is not None:
                values["attempts"] = max(attempts - 1, 0)
            if maybe_sent:  # the one resend: the log says it may arrive twice
                values["resends"] = resends + 1
                error = f"{error}; it may have gone out: sent again once (it may arrive twice)"
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


def _revive(now: datetime) -> int:
    """Rows a killed job left in ``sending``: queued to go again (the log says it may arrive
    twice), unless it was sent again once already (``resends``: a revival or a timeout before,
    whatever came between) or the message is too old: then failed (the service may have taken it
    each time: no loop of sends)."""
    t = NotificationDelivery.__table__.c
    stale = [t.state == "sending", t.claimed_at < now - timedelta(seconds=STALE_SENDING)]
    again = f"{REVIVED} at %s; sent again (it may arrive twice)"
    with db.engine.begin() as conn:
        rows = conn.execute(select(t.id, t.created_at, t.claimed_at, t.resends).where(*stale)).all()
        revived = 0
        for row_id, created, claimed, resends in rows:
            when = claimed.astimezone(clock.tz()).strftime("%Y-%m-%d %H:%M %Z")
            if resends >= 1:
                values = dict(state="failed", last_error=f"{REVIVED} again at {when}; {NOT_RESENT} "
                                                         "(sent again once already)")
            elif now >= give_up_at(created):
                values = dict(state="failed", last_error=expired(f"{REVIVED} at {when}"))
            else:
                values = dict(state="queued", last_error=again % when, resends=resends + 1)
                revived += 1
            conn.execute(update(NotificationDelivery.__table__).where(t.id == row_id, *stale)
                         .values(enqueued_at=None, **values))
    return revived


def sweep() -> dict:
    """The safety net: notices nobody prepared, rows never handed to RQ (or long ago), rows a
    killed job left in ``sending``."""
    now = utcnow()
    t = NotificationDelivery.__table__
    revived = _revive(now)
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
