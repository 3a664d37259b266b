"""The jobs page, progress rows and rq-dashboard, on the real Redis with the real worker."""
from __future__ import annotations

import re
import signal
import time
from datetime import timedelta

from flask_login import login_user
from rq import get_current_job
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import select, update

from portal.admin import jobs as jobs_view
from portal.extensions import db
from portal.models import AuditEntry, JobRun, StaffUser, SyncState, utcnow
from portal.queue import get_queue, get_redis
from tests.builders import gen_account, gen_agent, gen_staff
from tests.platform_fixtures import redis_down, wait_for

HX = {"HX-Request": "true"}


# -- jobs the worker runs for these tests (imported by the worker from this module) ----------

def count_to(n: int, gate: str) -> int:
    """Report progress, wait until the test opens the gate, then finish with a result text."""
    job = get_current_job()
    job.meta["progress"] = f"1/{n}"
    job.save_meta()
    deadline = time.monotonic() + 30
    while not job.connection.get(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.meta["result"] = f"{n} counted"
    job.save_meta()
    return n


def explode() -> None:
    raise ValueError("tariff file has no header row")


# -- helpers -----------------------------------------------------------------------------------

def login(client, login_name: str, password: str = "password123"):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"login": login_name, "password": password, "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)


def staff(client, role: str) -> dict:
    """Log in as a new staff member of ``role``; returns the headers of an HTMX post."""
    name = f"{role}{time.monotonic_ns()}"
    with client.application.app_context():  # (its own session, whether or not a test holds one)
        gen_staff(name, role=role)
    login(client, name)
    page = client.get("/jobs").get_data(as_text=True)
    return {**HX, "X-CSRFToken": re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)}


def progress(client, job_id: str, **args) -> str:
    return client.get(f"/jobs/{job_id}/progress", query_string=args, headers=HX).get_data(as_text=True)


def dead_state(account_id: int) -> SyncState:
    return db.session.scalar(select(SyncState).filter_by(account_id=account_id, platform="webhook"))


# -- failed jobs -----------------------------------------------------------------------------------

def test_a_failed_job_shows_its_error_and_retry_puts_it_back_in_the_queue(client, processes):
    """A job failed: do I see which function, with what, and why; and does "retry" requeue it?"""
    job = get_queue("default").enqueue(explode)
    worker = processes.start("jobs.worker")
    registry = FailedJobRegistry("default", connection=get_redis())
    wait_for(lambda: job.id in registry.get_job_ids(), what="the job to fail")
    worker.terminate()
    worker.wait(15)

    headers = staff(client, "manager")
    html = client.get("/jobs?tab=failed").get_data(as_text=True)
    assert "tests.test_admin_jobs.explode" in html
    assert "ValueError: tariff file has no header row" in html
    assert "Traceback" not in html  # the last line, not the whole traceback
    assert f'/jobs/failed/{job.id}/retry' in html

    r = client.post(f"/jobs/failed/{job.id}/retry", headers=headers)
    assert r.status_code == 200 and "toast" in r.headers["HX-Trigger"]
    assert job.id not in registry.get_job_ids()
    assert job.id in get_queue("default").get_job_ids()
    assert Job.fetch(job.id, connection=get_redis()).get_status() == "queued"
    entry = db.session.scalar(select(AuditEntry).filter_by(action="job.retry"))
    assert entry.actor.startswith("staff:manager") and entry.after["job_id"] == job.id
    assert "tests.test_admin_jobs.explode" in client.get("/jobs?tab=waiting").get_data(as_text=True)


def test_a_viewer_sees_the_jobs_but_cannot_retry(client, ctx):
    """A viewer may look at failed and dead jobs but gets 403 on every retry."""
    job = get_queue("default").enqueue(explode)
    job.set_status("failed")  # (only its listing matters here: a viewer never reaches the retry)
    account = gen_account()
    db.session.add(SyncState(account_id=account.id, platform="webhook", state="dead", attempts=8,
                             last_error="HTTP 503: maintenance"))
    db.session.commit()
    headers = staff(client, "viewer")

    html = client.get("/jobs?tab=dead&lang=en").get_data(as_text=True)
    assert "HTTP 503: maintenance" in html
    assert "/jobs/dead/retry" not in html and "/jobs/reconcile" not in html
    assert client.post("/jobs/dead/retry", data={"account_id": account.id, "platform": "webhook"},
                       headers=headers).status_code == 403
    assert client.post("/jobs/dead/retry-all", headers=headers).status_code == 403
    assert client.post(f"/jobs/failed/{job.id}/retry", headers=headers).status_code == 403
    assert client.post("/jobs/reconcile", headers=headers).status_code == 403
    db.session.rollback()
    assert dead_state(account.id).state == "dead"


# -- dead sync states ------------------------------------------------------------------------------

def test_a_dead_sync_shows_the_platforms_error_and_retry_syncs_it(client, webhook, processes):
    """The platform refused an account until the retries ran out: do I see its words, and
    does "retry" bring the account back into sync once the platform accepts it?"""
    webhook.fail("tariff 'Gold' is unknown here", status=422)
    processes.start("jobs.worker", SYNC_MAX_ATTEMPTS=1)
    account = gen_account(agent=gen_agent(platform="webhook"))
    db.session.commit()
    wait_for(lambda: dead_state(account.id) and dead_state(account.id).state == "dead", what="the sync to die")

    headers = staff(client, "manager")
    html = client.get("/jobs?tab=dead").get_data(as_text=True)
    assert "tariff &#39;Gold&#39; is unknown here" in html and "422" in html
    assert f'href="/accounts/{account.id}"' in html and account.login in html

    webhook.heal()
    r = client.post("/jobs/dead/retry", data={"account_id": account.id, "platform": "webhook"}, headers=headers)
    assert r.status_code == 200 and r.get_data(as_text=True) == ""  # the row leaves the list
    db.session.rollback()
    assert dead_state(account.id).state in ("pending", "ok")
    entry = db.session.scalar(select(AuditEntry).filter_by(action="platform.retry_dead"))
    assert entry.actor.startswith("staff:manager")
    wait_for(lambda: dead_state(account.id).state == "ok", what="the retried sync to succeed")
    assert webhook.states[account.login]["login"] == account.login
    assert "data-account" not in client.get("/jobs?tab=dead").get_data(as_text=True)


def test_dead_syncs_page_by_keyset_filter_by_platform_and_retry_all(client, ctx, monkeypatch):
    """Many dead syncs: pages follow one another, the platform filter stays in the URL, and
    "retry all" retries only what the filter shows."""
    monkeypatch.setattr(jobs_view, "PAGE", 2)
    accounts = [gen_account() for _ in range(3)]
    for a in accounts:
        db.session.add(SyncState(account_id=a.id, platform="webhook", state="dead", attempts=8,
                                 last_error=f"err {a.id}"))
    db.session.commit()
    headers = staff(client, "admin")

    first = client.get("/jobs?tab=dead&platform=webhook", headers=HX).get_data(as_text=True)
    assert "<html" not in first  # only the rows
    assert f"err {accounts[0].id}" in first and f"err {accounts[1].id}" in first
    assert f"err {accounts[2].id}" not in first
    more = re.search(r'hx-get="([^"]+after=[^"]+)"', first).group(1).replace("&amp;", "&")
    assert "platform=webhook" in more
    second = client.get(more, headers=HX).get_data(as_text=True)
    assert f"err {accounts[2].id}" in second and f"err {accounts[0].id}" not in second

    page = client.get("/jobs?tab=dead&platform=webhook").get_data(as_text=True)
    assert 'hx-push-url="true"' in page and '<option value="webhook" selected>' in page

    r = client.post("/jobs/dead/retry-all", data={"tab": "dead", "platform": "webhook"}, headers=headers)
    assert r.status_code == 200 and "err" not in r.get_data(as_text=True)
    db.session.rollback()
    assert {dead_state(a.id).state for a in accounts} == {"pending"}


def test_the_page_shows_when_redis_is_down(app, client):
    """Redis is down: the jobs page still opens, says so, and the dead syncs still show."""
    with app.app_context():  # (no test-wide context: each request gets its own, and its language)
        account = gen_account()
        db.session.add(SyncState(account_id=account.id, platform="webhook", state="dead", attempts=8,
                                 last_error="timeout"))
        db.session.commit()
    staff(client, "admin")
    with redis_down(app):
        r = client.get("/jobs?tab=failed&lang=en")
        assert r.status_code == 200 and "Redis unavailable" in r.get_data(as_text=True)
        assert "timeout" in client.get("/jobs?tab=dead").get_data(as_text=True)
        assert "Redis unavailable" in progress(client, "some-job") and "hx-get" in progress(client, "some-job")


# -- progress rows ----------------------------------------------------------------------------------

def test_a_progress_row_shows_the_job_running_then_its_result(client, processes):
    """A long action: does its row show how far it got, then the result, and stop polling?"""
    processes.start("jobs.worker")
    staff(client, "viewer")
    job = get_queue("high").enqueue(count_to, 3, "gate:count")
    html = progress(client, job.id, label="Counting")
    assert f'hx-get="/jobs/{job.id}/progress' in html and "Counting" in html

    running = wait_for(lambda: (h := progress(client, job.id, label="Counting")) and "1/3" in h and h,
                       what="the row to show the job's progress")
    assert 'data-state="started"' in running and "hx-get" in running
    get_redis().set("gate:count", "1")
    done = wait_for(lambda: (h := progress(client, job.id, label="Counting")) and 'data-state="finished"' in h and h,
                    what="the row to show the result")
    assert "3 counted" in done and "hx-get" not in done and "Counting" in done


def test_a_progress_row_shows_why_a_job_failed_or_that_it_is_gone(client, processes):
    """A failed job shows its exception and stops polling; an unknown job says it is not found."""
    processes.start("jobs.worker")
    staff(client, "viewer")
    job = get_queue("high").enqueue(explode)
    failed = wait_for(lambda: (h := progress(client, job.id, label="Import")) and 'data-state="failed"' in h and h,
                      what="the row to show the failure")
    assert "ValueError: tariff file has no header row" in failed and "hx-get" not in failed
    missing = progress(client, "no-such-job", label="Import")
    assert 'data-state="missing"' in missing and "hx-get" not in missing


def test_run_full_reconcile_now_shows_its_progress_until_it_is_done(client, webhook, processes):
    """An admin starts the full reconcile: the row follows it and ends with the jobs it enqueued."""
    account = gen_account(agent=gen_agent(platform="webhook"))
    db.session.commit()
    headers = staff(client, "admin")
    assert 'hx-post="/jobs/reconcile"' in client.get("/jobs").get_data(as_text=True)

    r = client.post("/jobs/reconcile", headers=headers)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'class="progress"' in html and "hx-get" in html
    poll = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")  # what the row polls
    processes.start("jobs.worker")
    done = wait_for(lambda: (h := client.get(poll, headers=HX).get_data(as_text=True))
                    and 'data-state="finished"' in h and h, what="the reconcile to finish")
    assert "1" in re.search(r'class="result">([^<]*)<', done).group(1) and "hx-get" not in done
    wait_for(lambda: dead_state(account.id) and dead_state(account.id).state == "ok", what="the account to sync")
    assert db.session.scalar(select(AuditEntry).filter_by(action="job.reconcile_all")) is not None
    run = wait_for(lambda: db.session.scalar(select(JobRun).filter_by(job_id=jobs_view.RECONCILE_JOB_ID,
                                                                        status="finished")),
                   what="the history row to say how the reconcile ended")
    assert run.actor.startswith("staff:admin") and run.func == "jobs.sync.reconcile_all" and run.result == "1"


# -- rq-dashboard ----------------------------------------------------------------------------------

def test_rq_dashboard_is_for_admins_only(app, client):
    """The raw queues: a guest is sent to log in, a manager gets 403, an admin sees them."""
    assert "rq_dashboard" in app.blueprints
    r = client.get("/jobs/rq/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    staff(client, "manager")
    assert client.get("/jobs/rq/").status_code == 403
    assert client.get("/jobs/rq/0/data/queues.json").status_code == 403
    assert 'href="/jobs/rq/"' not in client.get("/jobs").get_data(as_text=True)

    admin = app.test_client()
    staff(admin, "admin")
    assert 'href="/jobs/rq/"' in admin.get("/jobs").get_data(as_text=True)
    page = admin.get("/jobs/rq/")
    assert page.status_code == 200 and "RQ" in page.get_data(as_text=True)
    with app.app_context():
        get_queue("low").enqueue(explode)
    data = admin.get("/jobs/rq/0/data/queues.json").get_json()
    assert {q["name"]: q["count"] for q in data["queues"]}["low"] == 1


def test_rq_dashboard_actions_need_the_csrf_token_it_is_given(app, client, processes):
    """Its requeue button works with the token its page hands out, and not without it."""
    job = get_queue("default").enqueue(explode)
    worker = processes.start("jobs.worker")
    registry = FailedJobRegistry("default", connection=get_redis())
    wait_for(lambda: job.id in registry.get_job_ids(), what="the job to fail")
    worker.terminate()
    worker.wait(15)
    staff(client, "admin")
    assert client.get("/jobs/rq/").status_code == 200
    token = client.get_cookie("_csrf_token", path="/jobs/rq").value

    assert client.post(f"/jobs/rq/job/{job.id}/requeue").status_code == 400
    assert client.get("/jobs/rq/requeue/default").status_code == 405  # no change by a link
    assert job.id in registry.get_job_ids()
    r = client.post(f"/jobs/rq/job/{job.id}/requeue", headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["status"] == "OK"
    assert job.id in get_queue("default").get_job_ids()


# -- the history of jobs staff started -------------------------------------------------------------

def start_as(app, login_name: str, func, *args, **kw) -> str | None:
    """``start_job`` as the staff member ``login_name`` would from a page."""
    with app.test_request_context():
        login_user(db.session.scalar(select(StaffUser).filter_by(login=login_name)))
        return jobs_view.start_job(f"{__name__}.{func.__name__}", *args, **kw)


def history(client, **args) -> str:
    return client.get("/jobs", query_string={"tab": "history", "lang": "en", **args}).get_data(as_text=True)


def history_row(html: str, job_id: str) -> str:
    return re.search(rf'<tr data-job="{job_id}".*?</tr>', html, re.S).group(0)


def run_of(job_id: str) -> JobRun:
    db.session.rollback()
    return db.session.scalar(select(JobRun).filter_by(job_id=job_id))


def test_the_history_keeps_who_started_what_and_how_it_ended_after_rq_forgot_it(app, client, processes):
    """Yesterday a manager started a job that finished and one that failed: after the queue has
    forgotten both, do I still see who, what, about which account, when and the outcome?"""
    staff(client, "viewer")
    manager = gen_staff(f"boss{time.monotonic_ns()}", role="manager")
    account = gen_account()
    db.session.commit()
    ok = start_as(app, manager.login, count_to, 2, "gate:history", label="Counting two", about=("account", account.id))
    bad = start_as(app, manager.login, explode, label="Tariff import")
    assert run_of(ok).status == "started"  # the row is there before any worker ran the job
    processes.start("jobs.worker")
    get_redis().set("gate:history", "1")
    wait_for(lambda: run_of(ok).status == "finished" and run_of(bad).status == "failed", what="both outcomes")

    get_redis().flushdb()  # RQ forgot them (result TTL, a Redis restart)
    html = history(client)
    done, failed = history_row(html, ok), history_row(html, bad)
    assert manager.login in done and "Counting two" in done and "2 counted" in done and 'data-status="finished"' in done
    assert f'href="/accounts/{account.id}"' in done
    assert manager.login in failed and "Tariff import" in failed
    assert "ValueError: tariff file has no header row" in failed and 'data-status="failed"' in failed
    assert html.index(f'data-job="{bad}"') < html.index(f'data-job="{ok}"')  # newest first
    assert run_of(bad).finished_at is not None


def test_a_job_whose_worker_died_is_failed_by_rqs_cleanup_or_shown_lost(app, client, processes):
    """The worker was killed under a job: RQ's cleanup of abandoned jobs writes it failed; and a
    job left running whose RQ job has gone altogether shows as lost, not running for ever."""
    staff(client, "viewer")
    gen_staff("crasher", role="admin")
    first = start_as(app, "crasher", count_to, 5, "gate:never")
    second = start_as(app, "crasher", count_to, 5, "gate:never")
    worker = processes.start("jobs.worker")
    wait_for(lambda: Job.fetch(first, connection=get_redis()).meta.get("progress"), what="the job to run")
    worker.send_signal(signal.SIGKILL)
    worker.wait(15)
    assert run_of(first).status == "started" and run_of(second).status == "started"

    # what a worker's maintenance does with a job whose worker is gone (here at once, not minutes later)
    StartedJobRegistry("high", connection=get_redis()).cleanup(timestamp=time.time() + 3600)
    assert run_of(first).status == "failed" and "AbandonedJobError" in run_of(first).error

    Job.fetch(second, connection=get_redis()).delete()  # gone from Redis before any worker took it
    html = history(client)
    assert 'data-status="started"' in history_row(html, second)  # just started: may not be in Redis yet
    db.session.execute(update(JobRun).where(JobRun.job_id == second)
                       .values(created_at=utcnow() - timedelta(seconds=jobs_view.LOST_AFTER + 5)))
    db.session.commit()
    row = history_row(history(client), second)
    assert 'data-status="lost"' in row and "badge-dead" in row  # (language-neutral: the test holds ctx)
    assert run_of(second).status == "lost"


def test_a_job_started_while_redis_is_down_is_recorded_failed(app, client, ctx):
    """Redis is away when I press the button: the history says the job never started, and why."""
    gen_staff("unlucky", role="admin")
    with redis_down(app):
        assert start_as(app, "unlucky", count_to, 1, "gate:x", label="Counting") is None
    run = db.session.scalar(select(JobRun).filter_by(actor="staff:unlucky"))
    assert run.status == "failed" and run.error and run.finished_at is not None


def test_intercom_jobs_are_recorded_like_every_other(app, client, ctx):
    """The intercom page's connection check is a staff-started job: is it in the history?"""
    headers = staff(client, "manager")
    r = client.post("/intercom/check", headers=headers)
    assert r.status_code == 200
    run = db.session.scalar(select(JobRun).filter_by(func="jobs.intercom.check_connection"))
    assert run is not None and run.actor.startswith("staff:manager") and run.status == "started"
    assert Job.fetch(run.job_id, connection=get_redis()) is not None
    assert run.job_id in history(client)


def test_the_history_pages_newest_first(client, ctx):
    """Hundreds of jobs: the tab shows the newest page, and "show more" the older ones, each once."""
    staff(client, "viewer")
    long_ago = utcnow() - timedelta(days=3)
    db.session.add_all(JobRun(job_id=f"old-{i}", func="jobs.x", label=f"job {i}", actor="staff:someone",
                              status="finished", created_at=long_ago + timedelta(minutes=i), finished_at=long_ago)
                       for i in range(jobs_view.PAGE + 7))
    db.session.commit()
    first = history(client)
    shown = re.findall(r'<tr data-job="(old-\d+)"', first)
    assert shown == [f"old-{i}" for i in range(jobs_view.PAGE + 6, 6, -1)]
    more = re.search(r'hx-get="([^"]*tab=history[^"]*before=[^"]*)"', first).group(1).replace("&amp;", "&")
    rest = client.get(more, headers=HX).get_data(as_text=True)
    assert "<html" not in rest
    assert re.findall(r'<tr data-job="(old-\d+)"', rest) == [f"old-{i}" for i in range(6, -1, -1)]
    assert "before=" not in rest


def test_an_outcome_the_job_could_not_write_is_taken_from_rq(client, processes):
    """The job ended before its history row was written (or its callback never ran, as when a
    work horse is killed): while RQ still knows the job, does the history take the outcome
    from there, instead of showing it running or lost?"""
    staff(client, "viewer")
    done = get_queue("high").enqueue(count_to, 4, "gate:rq")  # no history callbacks
    broke = get_queue("high").enqueue(explode)
    long_ago = utcnow() - timedelta(seconds=jobs_view.LOST_AFTER + 5)
    db.session.add_all([JobRun(job_id=done.id, func="x", label="Counting four", actor="staff:a", created_at=long_ago),
                        JobRun(job_id=broke.id, func="y", label="Import", actor="staff:a", created_at=long_ago)])
    db.session.commit()
    get_redis().set("gate:rq", "1")
    processes.start("jobs.worker")
    wait_for(lambda: done.get_status(refresh=True) == "finished" and broke.get_status(refresh=True) == "failed",
             what="both jobs to end in RQ")
    html = history(client)
    assert 'data-status="finished"' in history_row(html, done.id) and "4 counted" in history_row(html, done.id)
    assert "ValueError: tariff file has no header row" in history_row(html, broke.id)
    assert run_of(done.id).status == "finished" and run_of(broke.id).status == "failed"
