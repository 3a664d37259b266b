"""The scheduler: ``python -m jobs.scheduler`` enqueues the periodic jobs (rq's
CronScheduler on the portal's Redis connection) and sweeps the outbox itself. Run one per
installation.

Embedded: ``.venv/bin/python -m jobs.scheduler``; production: ``python -m jobs.scheduler``
with the app's environment (DATABASE_URL, REDIS_URL, SECRET_KEY, CREDENTIALS_KEY), under a
supervisor that restarts it (deploy/portal-scheduler.service).

It outlives Redis outages: while Redis cannot be reached it logs and tries again every few
seconds (rq's own loop would exit), a cron job due meanwhile is enqueued once Redis is back,
and the next sweep hands RQ the outbox rows committed meanwhile. The sweep runs here, every
SWEEP_INTERVAL, and not as a job: it only reads the database and enqueues, and a queued sweep
would wait behind whatever the workers are busy with.

Cron times are in BILLING_TZ: rq reads cron fields in the process's local time, so the
scheduler sets its own time zone to BILLING_TZ. Names are stable, so a redeploy replaces a
schedule instead of adding one, and each job is safe to run twice. The jobs themselves are
declared in jobs/schedules.py.
"""
from __future__ import annotations

import logging
import os
import time

import redis
from rq.cron import CronScheduler
from rq.exceptions import StopRequested

from portal.queue import get_redis

from . import app, sync
from .schedules import periodic

log = logging.getLogger("jobs.scheduler")

RETRY_MAX = 5.0  # seconds between attempts while Redis is down (1, 2, 4, 5, 5, ...)


class Scheduler(CronScheduler):
    """rq's CronScheduler whose loop survives Redis outages and runs the outbox sweep."""

    def __init__(self, connection, sweep_interval: float, **kwargs):
        super().__init__(connection, **kwargs)
        self.sweep_interval = sweep_interval
        self.next_sweep = time.monotonic()  # at once on start

    def run(self) -> None:
        self._install_signal_handlers()
        born, wait = False, 1.0
        try:
            while True:
                try:
                    if not born:
                        self.register_birth()
                        born = True
                    if self.enqueue_jobs():  # a job due while Redis was down is still due
                        self.save()
                    self.heartbeat()
                    self.sweep()
                    wait = 1.0
                except redis.RedisError as e:
                    log.warning("Redis unreachable (%s); trying again in %.0f s", e, wait)
                    time.sleep(wait)
                    wait = min(wait * 2, RETRY_MAX)
                    continue
                time.sleep(max(0.0, min(self.calculate_sleep_interval(), self.next_sweep - time.monotonic())))
        except (KeyboardInterrupt, StopRequested):
            log.info("scheduler %s: stopping", self.name)
        finally:
            try:
                self.register_death()
            except redis.RedisError:
                pass  # its registry entry expires by itself

    def sweep(self) -> None:
        """The outbox sweep when due. A Redis error stops the loop's turn (retried); anything
        else (the database restarting) is logged and tried at the next interval."""
        if time.monotonic() < self.next_sweep:
            return
        try:
            result = sync.sweep_outbox()
        except (redis.RedisError, StopRequested):
            raise
        except Exception:
            log.exception("outbox sweep failed; next one in %s s", self.sweep_interval)
        else:
            if result["outbox_pairs"] or result["retries"]:
                log.info("outbox sweep: %s", result)
        self.next_sweep = time.monotonic() + self.sweep_interval


def main() -> None:
    flask_app = app()
    os.environ["TZ"] = flask_app.config["BILLING_TZ"]
    time.tzset()
    with flask_app.app_context():
        scheduler = Scheduler(get_redis(), float(flask_app.config["SWEEP_INTERVAL"]), logging_level=logging.INFO)
    for job in periodic(flask_app.config):
        scheduler.register(**job)
    scheduler.run()


if __name__ == "__main__":
    main()
