"""The scheduler: ``python -m jobs.scheduler`` enqueues the periodic jobs (rq's
CronScheduler on the portal's Redis connection). Run one per installation.

Embedded: ``.venv/bin/python -m jobs.scheduler``; production: ``python -m jobs.scheduler``
with the app's environment (DATABASE_URL, REDIS_URL, SECRET_KEY, CREDENTIALS_KEY).

Cron times are in BILLING_TZ: rq reads cron fields in the process's local time, so the
scheduler sets its own time zone to BILLING_TZ. Names are stable, so a redeploy replaces a
schedule instead of adding one, and each job is safe to run twice.
"""
from __future__ import annotations

import logging
import os
import time

from rq.cron import CronScheduler

from portal.queue import get_redis

from . import app, billing, sync


def periodic(config) -> list[dict]:
    """Every periodic job, in one list (each platform adds its own through its registry hook)."""
    from portal.platforms.registry import all_platforms

    return [
        {"name": "sweep-outbox", "func": sync.sweep_outbox, "queue_name": "high",
         "interval": int(config["SWEEP_INTERVAL"])},
        {"name": "charge-run", "func": billing.charge_today, "queue_name": "default", "cron": "5 0 * * *"},
        {"name": "full-reconcile", "func": sync.reconcile_all, "queue_name": "low", "cron": "30 3 * * *"},
    ] + [job for p in all_platforms() if p.periodic for job in p.periodic(config)]


def main() -> None:
    flask_app = app()
    os.environ["TZ"] = flask_app.config["BILLING_TZ"]
    time.tzset()
    with flask_app.app_context():
        scheduler = CronScheduler(connection=get_redis(), logging_level=logging.INFO)
    for job in periodic(flask_app.config):
        scheduler.register(**job)
    scheduler.start()


if __name__ == "__main__":
    main()
