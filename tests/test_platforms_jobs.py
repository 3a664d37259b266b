"""The periodic jobs: the scheduler's timetable, the nightly full reconcile, the charge run."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import current_app
from rq.cron import CronScheduler
from sqlalchemy import func, select

from jobs.billing import charge_today
from jobs.sync import reconcile_all
from portal.extensions import db
from portal.models import ChargeRun
from portal.queue import get_queue, get_redis
from tests.builders import gen_account, gen_agent
from tests.platform_fixtures import redis_down, wait_for


def test_the_scheduler_sweeps_itself_and_plans_the_charge_run_at_five_past_midnight_local(app, processes):
    """Does the scheduler hand RQ the outbox rows Redis missed at once (itself, with no worker
    running: the sweep waits behind no job), and plan the charge run for 00:05 and the full
    reconcile for 03:30 in the operator's time zone?"""
    with redis_down(app):
        account_id = gen_account(agent=gen_agent(platform="webhook")).id
    assert get_queue("default").job_ids == []
    processes.start("jobs.scheduler", SWEEP_INTERVAL=7)

    def jobs_planned():
        found = CronScheduler.all(get_redis())
        return {job.name: job for job in found[0].get_jobs()} if found else None

    jobs = wait_for(jobs_planned, what="the scheduler to start")
    wait_for(lambda: f"reconcile-webhook-{account_id}-default" in get_queue("default").job_ids,
             what="the sweep to enqueue the account's job")
    assert "jobs.sync.sweep_outbox" not in [j.func_name for j in get_queue("high").jobs]  # none waits for a worker
    local = ZoneInfo(current_app.config["BILLING_TZ"])
    charge_at = jobs["charge-run"].next_enqueue_time.astimezone(local)
    reconcile_at = jobs["full-reconcile"].next_enqueue_time.astimezone(local)
    assert (charge_at.hour, charge_at.minute) == (0, 5) and jobs["charge-run"].queue_name == "default"
    assert (reconcile_at.hour, reconcile_at.minute) == (3, 30) and jobs["full-reconcile"].queue_name == "low"


def test_the_full_reconcile_queues_every_account_on_its_platforms_behind_changes(ctx):
    """Does the nightly full reconcile queue every account that is on a platform, on the low
    queue, and no account that is on none?"""
    agent = gen_agent(platform="webhook")
    on_webhook = [gen_account(agent=agent), gen_account(agent=agent)]
    gen_account(agent=gen_agent())
    get_redis().flushdb()  # forget the jobs of the changes themselves
    assert reconcile_all() == 2
    assert sorted(get_queue("low").job_ids) == sorted(f"reconcile-webhook-{a.id}-low" for a in on_webhook)


def test_the_daily_charge_job_commits_its_run(ctx):
    """Does the daily charge job leave a committed charge run behind?"""
    gen_account()
    summary = charge_today()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ChargeRun).filter_by(scope="all")) == 1
    assert summary["run_id"] and summary["date"]
