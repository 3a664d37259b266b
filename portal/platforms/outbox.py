"""The outbox's dispatch side: the rows billing wrote (``portal.billing.outbox``: "account X
changed, platform P must catch up") are handed to RQ, and swept when that hand-off failed.

* After a commit, a session hook (``install``) enqueues one job per (account, platform) of the
  rows the transaction wrote (they were written as enqueued). If Redis is down then, the rows
  are marked un-enqueued again: nothing is lost.
* ``sweep`` (run by the scheduler itself every SWEEP_INTERVAL, so that it never waits behind
  a job) enqueues rows never enqueued, or enqueued longer than OUTBOX_REENQUEUE_AFTER ago,
  still not processed and in no job's hands (none waiting for them, none holding the
  account's lock: a killed job's account gets a new one once its short lock expires), and
  the sync states whose retry is due; and it forgets processed rows after OUTBOX_KEEP_DAYS.
* The job (``reconcile.reconcile_account``) marks the rows it covered as processed.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, event, or_, select, update

from ..billing.outbox import CHUNK, ROWS_KEY
from ..extensions import db
from ..models import OutboxEvent, SyncState, utcnow
from ..queue import WAITING, add_handoff, enqueue_once, get_redis, hand_off

log = logging.getLogger(__name__)

RECONCILE_JOB = "jobs.sync.reconcile_account"
# Staff's "sync now" and "retry": a pass that covers one reads the platform and pushes billing's
# state whatever changed there (reconcile.mode_of). A person waits for them; the nightly full
# reconcile waits for everyone.
STAFF_REASONS = ("sync.request", "sync.retry")
QUEUE_BY_REASON = {reason: "high" for reason in STAFF_REASONS}
SWEEP_LIMIT = 10000  # rows or retries per sweep; the next sweep takes the rest
JOB_TIMEOUT = 600
_WAITING = {status.value for status in WAITING}  # as stored in a job's hash


# -- handing rows to RQ -------------------------------------------------------------------------

def install(app) -> None:
    """Enqueue the outbox rows a transaction wrote once it has committed (once per process)."""
    add_handoff(_collect)  # H8: in one Redis round trip with the notifications' (queue.hand_off)
    if not event.contains(db.session, "after_commit", hand_off):
        event.listen(db.session, "after_commit", hand_off)
    if not event.contains(db.session, "after_rollback", _after_rollback):
        event.listen(db.session, "after_rollback", _after_rollback)


# Both hooks also fire when a SAVEPOINT is released or rolled back; only the outermost
# transaction's end counts (a released savepoint's rows are not committed yet).

def _after_rollback(session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(ROWS_KEY, None)


def _collect(session):
    """The after-commit hand-off (queue.add_handoff): one job per (account, platform) of the
    rows the transaction wrote (as enqueued); the rows whose job did not reach RQ are marked
    un-enqueued, and the sweeper enqueues them."""
    rows = session.info.pop(ROWS_KEY, None)
    if not rows:
        return None
    by_pair: dict[tuple, list] = defaultdict(list)
    for row in rows:
        by_pair[(row[2], row[1])].append(row)
    pairs = list(by_pair.items())
    calls = [_pair_call(platform, account_id, _queue_of([r[3] for r in pair_rows]))
             for (platform, account_id), pair_rows in pairs]

    def finish(results) -> None:
        failed = [r[0] for (_, pair_rows), result in zip(pairs, results) if isinstance(result, Exception)
                  for r in pair_rows]
        if failed:  # the commit stands; the sweeper enqueues what is left
            log.warning("outbox: %d row(s) not enqueued now, the sweeper will retry", len(failed),
                        exc_info=next(r for r in results if isinstance(r, Exception)))
            _mark_enqueued(failed, None)

    return calls, finish


def lock_name(platform: str, account_id: int) -> str:
    """The Redis lock a job holds while it reconciles the account (reconcile._take)."""
    return f"portal:lock:reconcile:{platform}:{account_id}"


def job_id(platform: str, account_id: int, queue: str) -> str:
    """Stable per (account, platform, queue), so that waiting duplicates collapse."""
    return f"reconcile-{platform}-{account_id}-{queue}"


def enqueue_pair(platform: str, account_id: int, queue: str = "default", scheduled: bool = False) -> bool:
    """``scheduled``: for the full reconcile (its job reads the platform, see SyncPass)."""
    # A running reconcile re-reads the account when rows arrive during its call, but one past that
    # last look (finishing in RQ) would miss this change: it does not cover it, a follow-up runs.
    name, func, args, jid, running_covers, options = _pair_call(platform, account_id, queue, scheduled)
    return enqueue_once(name, func, *args, job_id=jid, running_covers=running_covers, **options)


def _pair_call(platform: str, account_id: int, queue: str, scheduled: bool = False) -> tuple:
    """``enqueue_pair``'s arguments of enqueue_once, as a call of queue.enqueue_once_many."""
    args = (platform, account_id, True) if scheduled else (platform, account_id)
    return (queue, RECONCILE_JOB, args, job_id(platform, account_id, queue), False,
            {"result_ttl": 0, "job_timeout": JOB_TIMEOUT})


def enqueue_rows() -> int:
    """The sweeper's part: enqueue a job for each (account, platform) of unprocessed outbox
    rows never enqueued, or enqueued too long ago and in no job's hands."""
    o = OutboxEvent.__table__.c
    stale = utcnow() - timedelta(seconds=current_app.config["OUTBOX_REENQUEUE_AFTER"])
    with db.engine.connect() as conn:
        rows = conn.execute(select(o.id, o.account_id, o.platform, o.reason)
                            .where(o.processed_at.is_(None), or_(o.enqueued_at.is_(None), o.enqueued_at < stale))
                            .order_by(o.id).limit(SWEEP_LIMIT)).all()
        conn.rollback()
    return _enqueue(_not_in_hand(rows), mark=True)


def enqueue_account(platform: str, account_id: int) -> int:
    """A new job for the account's unprocessed rows on the platform (its job found the account
    busy and knocked: reconcile._take), on the most urgent queue they ask for."""
    o = OutboxEvent.__table__.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(o.id, o.account_id, o.platform, o.reason).where(
            o.account_id == account_id, o.platform == platform, o.processed_at.is_(None))).all()
        conn.rollback()
    return _enqueue(rows, mark=True)


def _not_in_hand(rows) -> list:
    """The rows whose (account, platform) no job has in hand: none of its jobs waits in its
    queue, and no job holds its lock (renewed while a job runs). Asked in one round trip
    per CHUNK pairs."""
    pairs = sorted({(r[2], r[1], _queue_of([r[3]])) for r in rows})
    held: set[tuple] = set()
    redis = get_redis()
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start:start + CHUNK]
        pipe = redis.pipeline(transaction=False)
        for platform, account_id, queue in chunk:
            pipe.exists(lock_name(platform, account_id))
            for jid in (job_id(platform, account_id, queue), job_id(platform, account_id, queue) + "-next"):
                pipe.hget(f"rq:job:{jid}", "status")
        answers = pipe.execute()
        for n, pair in enumerate(chunk):
            locked, *statuses = answers[3 * n:3 * n + 3]
            if locked or any(s is not None and s.decode() in _WAITING for s in statuses):
                held.add(pair[:2])
    return [r for r in rows if (r[2], r[1]) not in held]


def _enqueue(rows, mark: bool = False) -> int:
    """One job per (account, platform) of these (id, account_id, platform, reason) rows, on the
    most urgent queue any of them asks for. ``mark``: the rows are not marked as enqueued yet
    (the sweeper's); otherwise they are, and those that did not reach RQ are unmarked."""
    by_pair: dict[tuple, list] = defaultdict(list)
    for row in rows:
        by_pair[(row[2], row[1])].append(row)
    done: list[int] = []
    try:
        for (platform, account_id), pair_rows in by_pair.items():
            queue = _queue_of([r[3] for r in pair_rows])
            enqueue_pair(platform, account_id, queue)
            done += [r[0] for r in pair_rows]
    finally:  # what did reach RQ is marked, also when Redis went away half-way
        if mark:
            _mark_enqueued(done, utcnow())
        elif len(done) < len(rows):
            reached = set(done)
            _mark_enqueued([r[0] for r in rows if r[0] not in reached], None)
    return len(by_pair)


def _queue_of(reasons) -> str:
    """The most urgent queue these rows' reasons ask for."""
    return min((QUEUE_BY_REASON.get(reason, "default") for reason in reasons), key=_priority)


def _priority(queue: str) -> int:
    return {"high": 0, "default": 1}.get(queue, 2)


def _mark_enqueued(ids: list[int], at) -> None:
    """Set when these rows went to RQ (None: they did not), on a connection of its own."""
    if not ids:
        return
    o = OutboxEvent.__table__.c
    with db.engine.begin() as conn:
        for i in range(0, len(ids), CHUNK):
            conn.execute(update(OutboxEvent.__table__).where(o.id.in_(ids[i:i + CHUNK])).values(enqueued_at=at))


def enqueue_due_retries() -> int:
    """Enqueue the sync states in ``retry`` whose next attempt is due."""
    due = db.session.execute(
        select(SyncState.platform, SyncState.account_id)
        .where(SyncState.state == "retry", SyncState.next_attempt_at <= utcnow())
        .order_by(SyncState.next_attempt_at).limit(SWEEP_LIMIT)
    ).all()
    db.session.rollback()  # release the read before talking to Redis
    for platform, account_id in due:
        enqueue_pair(platform, account_id)
    return len(due)


def sweep() -> dict:
    """The safety net: re-enqueue what the after-commit hook could not, and due retries."""
    keep = timedelta(days=current_app.config["OUTBOX_KEEP_DAYS"])
    purged = db.session.execute(delete(OutboxEvent).where(OutboxEvent.processed_at < utcnow() - keep)).rowcount
    db.session.commit()
    return {"outbox_pairs": enqueue_rows(), "retries": enqueue_due_retries(), "purged": purged}
