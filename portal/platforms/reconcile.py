"""Reconcile one account on one platform, and the sync state that shows how it went.

A job never replays an event: it computes the desired state from billing data now
(``Platform.desired_state``), lets the platform read its actual state and apply the
difference (``Platform.reconcile``), and records the outcome in ``SyncState``. So every job
is idempotent, retries are safe, and the same code serves a change, the nightly full
reconcile and "sync now".

A pass knows why it runs (``registry.SyncPass``): ``manual`` when it covers a staff request
(outbox reasons ``outbox.STAFF_REASONS``), ``scheduled`` for the full reconcile, else
``change``. Only a ``change`` may skip the platform (``Platform.skip_unchanged``): "sync now"
and the scheduled reconcile always read it, since its side may have changed. What the
platform found changed on its side is taken into billing by ``apply_platform_changes`` in
the recording transaction, after the calls.

Failures are retried with exponential backoff kept in the database (state ``retry`` and
``next_attempt_at``; the outbox sweeper enqueues due retries). After SYNC_MAX_ATTEMPTS
consecutive failures the state is ``dead`` with the platform's error text, until
``retry_dead`` or ``request_sync``. A ``Conflict`` (the platform holds an object billing is
not bound to) is not retried: state ``conflict`` until staff resolve it and sync again.

A platform with a ``reconcile_batch`` hook gets the nightly full reconcile in batches
(``reconcile_accounts``): the same rules and records, read and written for many accounts at
once, so that the platform can serve several accounts with one call.

No database transaction stays open during a network call (SQLite has one writer; a
platform may take SYNC_HTTP_TIMEOUT to answer): read, commit, call, then record.
"""
from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import timedelta

from flask import current_app
from redis.exceptions import LockError, LockNotOwnedError
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload, selectinload

from ..billing import audit
from ..billing.outbox import CHUNK, add_events, notify, on_platform, on_platform_many, platforms_query
from ..extensions import db
from ..models import Account, AssignedService, Contract, ExtraFieldValue, OutboxEvent, SyncState, utcnow
from ..queue import Renewal, enqueue_once, get_redis
from . import connections, outbox, registry
from .http import Conflict, PlatformError, audit_calls, recording

log = logging.getLogger(__name__)

MAX_PASSES = 3  # passes per job while changes keep arriving during the calls
# One job per (account, platform) at a time, so an older read never wins. The lock's TTL is
# short and renewed while the job runs (queue.Renewal): a killed job's lock is gone within
# LOCK_SECONDS, and the sweeper gives its account a new job (outbox.enqueue_rows).
LOCK_SECONDS = 10
LOCK_WAIT = 60  # how long a direct call (a test, the shell) waits for the account; a job never waits
BATCH = 100  # accounts per job of the full reconcile on a platform with a reconcile_batch hook (small
# enough that the last jobs of a run do not leave most workers idle)
BATCH_JOB = "jobs.sync.reconcile_batch"


def backoff(attempts: int) -> float:
    """Seconds to wait after the n-th consecutive failure."""
    cfg = current_app.config
    return min(cfg["SYNC_BACKOFF_BASE"] * 2 ** (attempts - 1), cfg["SYNC_BACKOFF_MAX"])


def reconcile_account(platform_name: str, account_id: int, job_id: str | None = None, scheduled: bool = False,
                      wait: float = LOCK_WAIT) -> str:
    """Bring one account on one platform to its desired state; returns the sync state, or
    ``busy`` when another job holds the account (it runs the pass for this change: see
    ``_take``). ``scheduled``: the full reconcile (or a platform's scheduled re-sync) asked for
    it. ``wait``: seconds to wait for a busy account (jobs pass 0: a worker never blocks)."""
    platform = registry.get(platform_name)
    lock = _take(platform_name, account_id, wait, scheduled)
    if lock is None:
        return "busy"
    try:
        with Renewal(lambda: _renew(lock), LOCK_SECONDS) as renewal:
            for n in range(MAX_PASSES):  # the passes after the first are for changes made meanwhile
                state, more = _one_pass(platform, account_id, job_id, scheduled and n == 0)
                if state != "ok" or not more:
                    break
    finally:
        knocks = _release(lock)
    _answer_knocks(platform_name, account_id, knocks, renewal.lost)
    return state


def _knock_name(lock_name: str) -> str:
    return lock_name + ":knock"


def _take(platform: str, account_id: int, wait: float, scheduled: bool = False):
    """The account's lock, or None when another job holds it. A job that finds it held
    knocks (adds why it came, ``change`` or ``scheduled``, to a set beside the lock) and
    tries once more: the holder reads the knocks after releasing and queues what they ask
    for, so the change is not left waiting for the sweeper. Knocks are cleared by whoever
    takes the lock next, before its pass reads the account."""
    r = get_redis()
    name = outbox.lock_name(platform, account_id)
    # thread_local=False: the renewal thread must see the token
    lock = r.lock(name, timeout=LOCK_SECONDS, blocking=wait > 0, blocking_timeout=wait or None,
                  thread_local=False)
    if not lock.acquire():
        r.pipeline().sadd(_knock_name(name), "scheduled" if scheduled else "change") \
            .expire(_knock_name(name), 3600).execute()
        if not lock.acquire(blocking=False):
            return None
    r.delete(_knock_name(name))
    return lock


def _renew(lock) -> bool:
    try:
        lock.reacquire()
    except LockNotOwnedError:
        return False
    return True


def _release(lock) -> set[bytes]:
    """Release the lock (one lost meanwhile is simply gone); returns the knocks."""
    try:
        lock.release()
    except LockError:
        pass
    knocks, _ = lock.redis.pipeline().smembers(_knock_name(lock.name)).delete(_knock_name(lock.name)).execute()
    return knocks


def _answer_knocks(platform: str, account_id: int, knocks: set[bytes], lost: bool) -> None:
    """Queue what the jobs that found the account busy came for: its changes, a scheduled
    read. A lock lost meanwhile (Redis restarted, a stall past its TTL) means another job may
    have run alongside with other data: one more pass settles it."""
    if lost:
        outbox.enqueue_pair(platform, account_id)
    elif b"change" in knocks:
        outbox.enqueue_account(platform, account_id)
    if b"scheduled" in knocks:
        outbox.enqueue_pair(platform, account_id, "low", scheduled=True)


def mode_of(reasons, scheduled: bool = False) -> str:
    """Why a pass runs, from the reasons of the outbox rows it covers (see SyncPass)."""
    if any(r in outbox.STAFF_REASONS for r in reasons):
        return "manual"
    return "scheduled" if scheduled else "change"


def _one_pass(platform: registry.Platform, account_id: int, job_id: str | None,
              scheduled: bool = False) -> tuple[str, bool]:
    # 1. read billing data, the rows this pass covers and the last pass
    rows = _unprocessed_events(platform.name, account_id)
    covered = [event_id for event_id, _r in rows]
    account = db.session.get(Account, account_id)
    if account is None:  # nothing to sync; do not let the sweeper bring the rows back
        _mark_processed(covered)
        db.session.commit()
        return "ok", False
    login = account.login
    last = db.session.scalar(select(SyncState).filter_by(account_id=account_id, platform=platform.name))
    sync = registry.SyncPass(mode_of((r for _i, r in rows), scheduled),
                             last.actual if last is not None else None)
    actual, desired, error, skip, conflict = None, None, None, False, False
    try:
        desired = platform.desired_state(account) if on_platform(account_id, platform.name) else None
        connection = connections.load(platform.name)
        skip = (platform.skip_unchanged and sync.mode == "change" and last is not None and last.state == "ok"
                and last.actual is not None and last.desired == desired)
    except Exception as e:  # a bug in the mapping, an undecryptable password: shown, not lost
        error = _unexpected(platform.name, account_id, e)
    db.session.rollback()  # end the read before any network call

    # 2. call the platform (unless billing's wish is what the last pass left there)
    with recording() as calls:
        if skip:
            actual = sync.last
        elif error is None:
            try:
                if connection is None:
                    raise PlatformError(f"no enabled connection for platform {platform.name!r} "
                                        "(flask platforms set)")
                actual = platform.reconcile(platform.client(connection), login, desired, sync)
            except Conflict as e:
                error, conflict = str(e), True
            except PlatformError as e:
                error = str(e)
            except Exception as e:
                error = _unexpected(platform.name, account_id, e)

    # 3. take the platform's changes into billing, record the outcome, the audit entries and
    # the covered rows, in one transaction
    if error is None and not skip:
        error = _take_platform_changes(platform, account_id, actual, sync)
    st = _sync_state(platform.name, account_id)
    _record(platform.name, st, desired, actual, error, calls, job_id, utcnow(), read=not skip, conflict=conflict)
    if st.state == "retry":
        # Staff's request stays unprocessed, so the retry is still "sync now" (manual); it is
        # due with the retry (the sweeper would take it earlier, bypassing the backoff).
        kept = [event_id for event_id, reason in rows if reason in outbox.STAFF_REASONS]
        covered = [event_id for event_id in covered if event_id not in kept]
        if kept:
            db.session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(kept))
                               .values(enqueued_at=st.next_attempt_at))
    _mark_processed(covered)
    state = st.state
    db.session.commit()
    more = bool(_unprocessed_events(platform.name, account_id))  # changes committed during the call
    db.session.rollback()
    return state, more


def _record(platform: str, st: SyncState, desired, actual, error: str | None, calls: list[dict], job_id, now,
            read: bool = True, conflict: bool = False) -> None:
    """One account's outcome into its sync state, and its calls into the audit log.
    ``read``: the platform was called (``synced_at`` is when it last confirmed its state).
    ``conflict``: the error is a Conflict, for a person (no retries)."""
    st.desired, st.last_attempt_at, st.job_id = desired, now, job_id
    if error is None:
        st.state, st.actual, st.last_error, st.attempts, st.next_attempt_at = "ok", actual, None, 0, None
        if read or st.synced_at is None:
            st.synced_at = now
    else:
        st.attempts = (st.attempts or 0) + 1
        st.last_error = error[:4000]
        if conflict:
            st.state, st.next_attempt_at = "conflict", None
        elif st.attempts >= current_app.config["SYNC_MAX_ATTEMPTS"]:
            st.state, st.next_attempt_at = "dead", None
        else:
            st.state, st.next_attempt_at = "retry", now + timedelta(seconds=backoff(st.attempts))
    audit_calls(calls, f"platform:{platform}", "account", st.account_id)


def _take_platform_changes(platform: registry.Platform, account_id: int, actual, sync: registry.SyncPass) -> str | None:
    """The platform's hook that takes changes made on its side into billing; its failure
    undoes what it wrote and fails the pass (retried, shown), so the next pass finds the
    change again."""
    if platform.apply_platform_changes is None or actual is None:
        return None
    try:
        platform.apply_platform_changes(account_id, actual, sync)
    except Exception as e:
        db.session.rollback()
        return "taking the platform's changes into billing: " + _unexpected(platform.name, account_id, e)
    return None


def _unexpected(platform: str, account_id: int, e: Exception) -> str:
    """Our own failure: logged with its traceback, and retried and shown like a refusal."""
    log.exception("reconcile %s account %s", platform, account_id)
    return f"{type(e).__name__}: {e}"


def _unprocessed_events(platform: str, account_id: int) -> list[tuple[int, str]]:
    """(id, reason) of the account's unprocessed rows on the platform."""
    # Only the ids read here are marked processed: a row committed later (even with a
    # lower id, on PostgreSQL) gets its own pass or job.
    return db.session.execute(select(OutboxEvent.id, OutboxEvent.reason).where(
        OutboxEvent.account_id == account_id, OutboxEvent.platform == platform,
        OutboxEvent.processed_at.is_(None))).tuples().all()


def _unprocessed_of(platform: str, account_ids: list[int]) -> list[tuple[int, int]]:
    """(event id, account id) of the unprocessed rows of these accounts."""
    rows: list[tuple[int, int]] = []
    for i in range(0, len(account_ids), CHUNK):
        rows += db.session.execute(select(OutboxEvent.id, OutboxEvent.account_id).where(
            OutboxEvent.account_id.in_(account_ids[i:i + CHUNK]), OutboxEvent.platform == platform,
            OutboxEvent.processed_at.is_(None))).tuples().all()
    return rows


def _mark_processed(ids: list[int]) -> None:
    for i in range(0, len(ids), CHUNK):
        db.session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids[i:i + CHUNK]))
                           .values(processed_at=utcnow()))


def _sync_state(platform: str, account_id: int) -> SyncState:
    # created only here, under the per-pair lock, so two jobs never race to create it
    st = db.session.scalar(select(SyncState).filter_by(account_id=account_id, platform=platform))
    if st is None:
        st = SyncState(account_id=account_id, platform=platform, state="pending", attempts=0)
        db.session.add(st)
    return st


# -- what other code calls ----------------------------------------------------------------------

def _iso(value):
    return value.isoformat() if value is not None else None


def sync_states(account_id: int) -> list[dict]:
    """How the account stands on each platform it is on (or was synced to), JSON-friendly."""
    pairs = platforms_query([account_id])
    names = set(db.session.scalars(select(pairs.c.platform)))
    rows = {st.platform: st for st in db.session.scalars(select(SyncState).filter_by(account_id=account_id))}
    out = []
    for name in sorted(names | set(rows)):
        st = rows.get(name)
        out.append({
            "platform": name,
            "state": st.state if st else "pending",
            "desired": st.desired if st else None,
            "actual": st.actual if st else None,
            "last_error": st.last_error if st else None,
            "attempts": st.attempts if st else 0,
            "next_attempt_at": _iso(st.next_attempt_at) if st else None,
            "synced_at": _iso(st.synced_at) if st else None,
        })
    return out


def _reset(*where) -> list[tuple[int, str]]:
    """Put failed sync states back to pending with a fresh count of attempts."""
    states = list(db.session.scalars(select(SyncState).where(SyncState.state.in_(("retry", "dead")), *where)))
    for st in states:
        st.state, st.attempts, st.next_attempt_at = "pending", 0, None
    return [(st.account_id, st.platform) for st in states]


def request_sync(account_id: int, actor: str) -> None:
    """"Sync now": reconcile the account on all its platforms at once, failed ones included.
    The caller commits; the outbox hook enqueues."""
    _reset(SyncState.account_id == account_id)
    notify([account_id], "sync.request")
    audit.record(actor, "platform.sync_request", None, "sync requested", object_type="account",
                 object_id=account_id)


def retry_dead(account_id: int | None = None, platform: str | None = None, *, actor: str) -> int:
    """Give dead sync states (of one account, one platform, or all) a fresh set of attempts.
    Returns how many; the caller commits and the outbox hook enqueues."""
    where = [SyncState.state == "dead"]
    if account_id is not None:
        where.append(SyncState.account_id == account_id)
    if platform is not None:
        where.append(SyncState.platform == platform)
    pairs = _reset(*where)
    if pairs:
        add_events(pairs, "sync.retry")
        audit.record(actor, "platform.retry_dead", None, f"{len(pairs)} dead sync state(s) retried",
                     after={"pairs": [list(p) for p in pairs[:1000]]}, object_type="account",
                     object_id=account_id)
    return len(pairs)


def reconcile_all(batch: int = 1000, platforms: set[str] | None = None) -> int:
    """Enqueue every account on every platform it is on (the nightly full reconcile, on the
    ``low`` queue so that changes overtake it; each pass reads the platform): one job per
    account, or per BATCH accounts on a platform with a ``reconcile_batch`` hook. ``platforms``:
    only these (a platform's own scheduled re-sync). Returns the number of accounts enqueued."""
    enqueued, last_id = 0, 0
    waiting: dict[str, list[int]] = defaultdict(list)  # batch platforms: accounts not enqueued yet
    while True:
        ids = list(db.session.scalars(select(Account.id).where(Account.id > last_id).order_by(Account.id)
                                      .limit(batch)))
        if ids:
            pairs = platforms_of(ids)
            db.session.rollback()
            for account_id, platform in sorted(pairs):
                if platforms is not None and platform not in platforms:
                    continue
                if registry.get(platform).reconcile_batch is None:
                    enqueued += outbox.enqueue_pair(platform, account_id, "low", scheduled=True)
                else:
                    waiting[platform].append(account_id)
            last_id = ids[-1]
        for platform, pending in waiting.items():
            while len(pending) >= BATCH or (pending and not ids):
                enqueued += _enqueue_batch(platform, pending[:BATCH])
                del pending[:BATCH]
        if not ids:
            return enqueued


def _enqueue_batch(platform: str, account_ids: list[int]) -> int:
    added = enqueue_once("low", BATCH_JOB, platform, account_ids, result_ttl=0, job_timeout=outbox.JOB_TIMEOUT,
                         job_id=f"reconcile-{platform}-batch-{account_ids[0]}-{account_ids[-1]}-low")
    return len(account_ids) if added else 0


def reconcile_accounts(platform_name: str, account_ids: list[int], job_id: str | None = None) -> dict:
    """The full reconcile of many accounts of a platform with a ``reconcile_batch`` hook, in
    one job: billing data read at once, the hook's calls, then every sync state, audit entry
    and covered outbox row written in one transaction. Same rules as ``reconcile_account``:
    each account under its own lock, no transaction open during the calls. An account whose
    lock is taken, that changed during the calls, or that the hook left out gets its own job
    instead. Returns counts of the sync states written and of the own jobs."""
    platform = registry.get(platform_name)
    names = {a: outbox.lock_name(platform_name, a) for a in account_ids}
    locks = LockSet(list(names.values()), LOCK_SECONDS, knocks=True)
    counts: dict[str, int] = defaultdict(int)
    busy = [a for a, name in names.items() if name in locks.busy]
    mine = [a for a in account_ids if a not in busy]
    try:
        with Renewal(locks.renew, LOCK_SECONDS) as renewal:
            again = _batch_pass(platform, mine, job_id, counts) if mine else []
    finally:
        knocks = locks.release()
    for account_id in busy + again:  # a busy one still owes its scheduled read
        outbox.enqueue_pair(platform_name, account_id, *(("low", True) if account_id in busy else ("default",)))
    for account_id in mine:
        _answer_knocks(platform_name, account_id, knocks.get(names[account_id], set()), renewal.lost)
    counts["own_jobs"] = len(busy) + len(again)
    return dict(counts)


class LockSet:
    """Many Redis locks taken in one round trip and released in another; a lock held
    elsewhere is not waited for: its name is in ``busy``. Compatible with ``redis.lock``
    (the same SET NX and token check), so either kind excludes the other. ``renew`` (for
    queue.Renewal) resets their TTL. ``knocks``: the knocks of ``_take`` beside the locks are
    cleared when taken, and ``release`` returns those made meanwhile."""

    def __init__(self, names: list[str], seconds: float, knocks: bool = False):
        self.redis = get_redis()
        self.ms, self.knocks = int(seconds * 1000), knocks
        self.tokens = {name: uuid.uuid4().hex for name in names}
        pipe = self.redis.pipeline(transaction=False)
        for name, token in self.tokens.items():
            pipe.set(name, token, nx=True, px=self.ms)
        taken = pipe.execute() if names else []
        self.busy = {name for name, ok in zip(list(self.tokens), taken) if not ok}
        for name in self.busy:
            del self.tokens[name]
        if knocks and self.tokens:
            self.redis.delete(*(_knock_name(name) for name in self.tokens))

    def _scripts(self):
        return self.redis.lock("portal:lock:unused")

    def renew(self) -> bool:
        """Reset the TTL of every lock held; False if one is no longer ours."""
        names = list(self.tokens)
        if not names:
            return True
        script = self._scripts().lua_reacquire
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            script(keys=[name], args=[self.tokens[name], self.ms], client=pipe)
        return all(pipe.execute())

    def release(self) -> dict[str, set[bytes]]:
        """Release every lock held (one expired meanwhile is simply gone); returns the knocks
        on them (with ``knocks``), by name."""
        names = list(self.tokens)
        if not names:
            return {}
        script = self._scripts().lua_release
        pipe = self.redis.pipeline(transaction=self.knocks)  # knocks read and cleared at once
        for name in names:
            script(keys=[name], args=[self.tokens.pop(name)], client=pipe)
        if self.knocks:
            for name in names:
                pipe.smembers(_knock_name(name)).delete(_knock_name(name))
        answers = pipe.execute(raise_on_error=False)[len(names)::2]
        return {name: knocks for name, knocks in zip(names, answers) if knocks and isinstance(knocks, set)}


def _batch_pass(platform: registry.Platform, account_ids: list[int], job_id, counts) -> list[int]:
    """One pass over a batch; returns the accounts to give their own job (changed during the
    calls, or left out by the hook)."""
    # 1. read billing data and the rows this pass covers
    covered = _unprocessed_of(platform.name, account_ids)
    accounts = {a.id: a for a in db.session.scalars(select(Account).where(Account.id.in_(account_ids)).options(
        selectinload(Account.services).joinedload(AssignedService.service),
        selectinload(Account.extra_values).joinedload(ExtraFieldValue.field),
        joinedload(Account.contract).joinedload(Contract.subscriber)))}
    members = on_platform_many(list(accounts), platform.name)
    items, results = [], {}
    for account_id, account in accounts.items():
        try:
            items.append((account_id, account.login,
                          platform.desired_state(account) if account_id in members else None))
        except Exception as e:
            results[account_id] = (None, _unexpected(platform.name, account_id, e), [])
    try:
        connection = connections.load(platform.name)
    except Exception as e:
        connection, error = None, _unexpected(platform.name, account_ids[0], e)
    else:
        error = None if connection is not None else \
            f"no enabled connection for platform {platform.name!r} (flask platforms set)"
    db.session.rollback()  # end the read before any network call

    # 2. call the platform
    if items:
        with recording() as calls:
            try:
                if error is None:
                    results.update(platform.reconcile_batch(platform.client(connection), items))
            except PlatformError as e:
                error = str(e)
            except Exception as e:
                error = _unexpected(platform.name, items[0][0], e)
        if error is not None:  # the whole batch failed: its calls go to the first account
            results.update({a: (None, error, calls if n == 0 else []) for n, (a, _l, _d) in enumerate(items)})
    desired = {a: d for a, _l, d in items}
    left_out = [a for a in accounts if a not in results]

    # 3. record every outcome, the audit entries and the covered rows, in one transaction
    states = {st.account_id: st for st in db.session.scalars(select(SyncState).where(
        SyncState.platform == platform.name, SyncState.account_id.in_(list(results))))}
    now = utcnow()
    for account_id, (actual, err, calls) in results.items():
        st = states.get(account_id)
        if st is None:
            st = SyncState(account_id=account_id, platform=platform.name, state="pending", attempts=0)
            db.session.add(st)
        _record(platform.name, st, desired.get(account_id), actual, err, calls, job_id, now)
        counts[st.state] += 1
    covered = [(event_id, a) for event_id, a in covered if a not in left_out]
    _mark_processed([event_id for event_id, _a in covered])
    db.session.commit()
    seen = {event_id for event_id, _a in covered}
    again = {a for event_id, a in _unprocessed_of(platform.name, list(results)) if event_id not in seen}
    db.session.rollback()
    return sorted(again | set(left_out))


def platforms_of(account_ids) -> list[tuple[int, str]]:
    pairs = platforms_query(account_ids)
    return [tuple(r) for r in db.session.execute(select(pairs.c.account_id, pairs.c.platform))]
