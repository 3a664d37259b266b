"""The «Интерсвязь» admin page: profiles with their addresses and drift, the connection check,
the drift check of every profile, the login lookup (also from the new-account form), and the
account page's access fragment.

Nothing here calls the platform: lookups and checks are jobs (jobs/intercom.py) shown by a
fragment that polls until the job has finished (the progress-row contract of jobs.py), and
the profile list draws what the last read of each profile showed (portal/platforms/intercom).
"""
from __future__ import annotations

import uuid

import redis
from flask import abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from ..billing import audit
from ..extensions import db
from ..models import Account, IntercomAttachment, IntercomProfile, OutboxEvent, PlatformConnection, SyncState
from ..platforms.intercom import console, sync
from ..web import is_htmx, with_toast
from . import bp
from .auth import WRITERS, actor, staff_required
from .jobs import job_view, start_job

PAGE = 50
JOBS = {
    "lookup": ("jobs.intercom.lookup_login", _l("Looking the login up on «Интерсвязь»")),
    "check": ("jobs.intercom.check_connection", _l("Connection check")),
    "profiles": ("jobs.intercom.check_profiles", _l("Drift check of every profile")),
}
LEVELS = {"full": _l("full access"), "limited": _l("limited access"), "absent": _l("no access"),
          "other": _l("other access")}
DRIFT = {"access": _l("access differs"), "address": _l("address differs"), "not_ours": _l("should not be here"),
         "unknown": _l("not our account"), "missing": _l("missing on the platform")}


def why_text(code: str) -> str:
    """Why an address has less than full access, for staff."""
    return str({
        "no_login": _l("no «Интерсвязь» login"), "inactive": _l("account not activated"),
        "disabled": _l("account disabled"), "no_service": _l("no intercom service in force"),
        "blocked:balance": _l("blocked by balance"), "blocked:manager": _l("blocked by a manager"),
        "blocked:subscriber": _l("blocked by the subscriber"), "service_suspended": _l("service suspended"),
        "not_on_platform": _l("not on the intercom agent or service"),
    }.get(code, code))


@bp.app_context_processor
def _intercom_globals():
    return {"intercom_levels": LEVELS, "intercom_drift": DRIFT, "intercom_why": why_text,
            "intercom_access": account_access}


# -- the page ---------------------------------------------------------------------------------------

def profiles_page(q: str | None, after: str | None) -> dict:
    query = select(IntercomProfile).order_by(IntercomProfile.login).limit(PAGE + 1)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(func.lower(IntercomProfile.login).like(like)
                            | func.lower(IntercomProfile.full_name).like(like))
    if after:
        query = query.where(IntercomProfile.login > after)
    profiles = list(db.session.scalars(query))
    more = len(profiles) > PAGE
    profiles = profiles[:PAGE]
    options = dict((db.session.scalar(select(PlatformConnection.options).filter_by(kind=sync.PLATFORM))) or {})
    items = []
    for p in profiles:
        rows = console.view_profile(p.login, p.addresses or [])
        items.append({"p": p, "rows": rows, "card": console.card_drift(p.login, p, rows, options)})
    return {"items": items, "next": profiles[-1].login if more else None}


def _page_context() -> dict:
    row = db.session.scalar(select(PlatformConnection).filter_by(kind=sync.PLATFORM))
    counts = dict(db.session.execute(select(SyncState.state, func.count()).where(SyncState.platform == sync.PLATFORM)
                                     .group_by(SyncState.state)).tuples().all())
    return {"connection": row, "counts": counts,
            "profiles_total": db.session.scalar(select(func.count()).select_from(IntercomProfile)),
            "can_act": current_user.role in WRITERS}


@bp.route("/intercom")
@staff_required()
def intercom():
    """Which profiles are our accounts on, with which addresses and access, and where does the
    platform differ from what billing wants?"""
    q = (request.args.get("q") or "").strip() or None
    page = profiles_page(q, request.args.get("after") or None)
    if is_htmx() and request.args.get("fragment") == "rows":
        return render_template("admin/intercom/_profiles.html", page=page, q=q)
    return render_template("admin/intercom/page.html", page=page, q=q, **_page_context())


# -- jobs -----------------------------------------------------------------------------------------

def _start(kind: str, *args, **audit_after) -> str | None:
    """Start an intercom job (recorded in the job history by start_job); None: Redis is away."""
    func_name, label = JOBS[kind]
    job_id = start_job(func_name, *args, job_id=f"intercom-{kind}-{uuid.uuid4().hex[:12]}", label=str(label),
                       timeout=3600 if kind == "profiles" else 120, result_ttl=3600)
    if job_id is None:
        return None
    audit.record(actor(), f"intercom.{kind}", None, str(label), after={"job_id": job_id, **audit_after},
                 object_type="job")
    db.session.commit()
    return job_id


def _job_fragment(kind: str, job_id: str | None, **extra):
    view = job_view(job_id) if job_id else {"state": "unavailable"}
    view.pop("result", None)  # the text form; we draw the job's return value instead
    result = view.pop("value", None)
    return render_template("admin/intercom/_job.html", kind=kind, job_id=job_id, label=JOBS[kind][1],
                           result=result, **view, **extra)


@bp.route("/intercom/jobs/<any(lookup, check, profiles):kind>/<job_id>")
@staff_required()
def intercom_job(kind: str, job_id: str):
    """How far is this intercom job? (Polled by its row until it has finished.)"""
    return _job_fragment(kind, job_id)


@bp.route("/intercom/check", methods=["POST"])
@staff_required(*WRITERS)
def intercom_check():
    """Is the platform reachable, and does it accept our API key? (A job.)"""
    try:
        job_id = _start("check")
    except redis.RedisError:
        return _job_fragment("check", None)
    return _job_fragment("check", job_id)


@bp.route("/intercom/check-profiles", methods=["POST"])
@staff_required(*WRITERS)
def intercom_check_profiles():
    """Read every profile now and queue a sync of every account that drifted. (A job.)"""
    try:
        job_id = _start("profiles")
    except redis.RedisError:
        return _job_fragment("profiles", None)
    return _job_fragment("profiles", job_id)


@bp.route("/intercom/lookup", methods=["GET", "POST"])
@staff_required(*WRITERS)
def intercom_lookup():
    """Before creating an account: does this login have a profile, whose, with which flats?

    GET: the lookup page (from the Intercom page). POST (``login`` or ``extra.isvyaz_login``,
    as the new-account form sends it): start the lookup job and answer its polling row."""
    if request.method == "GET":
        return render_template("admin/intercom/lookup.html", login=request.args.get("login", ""))
    login = (request.form.get("login") or request.form.get(f"extra.{sync.FIELD}") or "").strip()
    if not login or len(login) > 64:
        return render_template("admin/intercom/_job.html", kind="lookup", job_id=None, state="invalid",
                               label=JOBS["lookup"][1], error=_("Enter the «Интерсвязь» login first.")), 422
    try:
        job_id = _start("lookup", login, login=login)
    except redis.RedisError:
        return _job_fragment("lookup", None)
    return _job_fragment("lookup", job_id)


# -- the account page's fragment ----------------------------------------------------------------------

def account_access(account: Account) -> dict | None:
    """The address's access as billing wants it and as the platform had it at the last sync
    (None: the account has nothing to do with the intercom platform)."""
    st = db.session.scalar(select(SyncState).filter_by(account_id=account.id, platform=sync.PLATFORM))
    want = console.billing_view(account)
    if st is None and want["why"] == ["not_on_platform"] and not want["login"]:
        return None
    waiting = db.session.scalar(select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.account_id == account.id, OutboxEvent.platform == sync.PLATFORM,
        OutboxEvent.processed_at.is_(None)))
    actual = st.actual if st is not None else None
    attached = list(db.session.scalars(select(IntercomAttachment.login)
                                       .where(IntercomAttachment.account_id == account.id)))
    return {"want": want, "have_level": (actual or {}).get("level", "absent"),
            "have_login": (actual or {}).get("login"),
            "state": st.state if st else "pending", "error": st.last_error if st else None,
            "synced_at": st.synced_at if st else None, "busy": bool(waiting) or st is None or st.state == "pending",
            "attached": attached}


@bp.route("/accounts/<int:account_id>/intercom")
@staff_required()
def account_intercom(account_id: int):
    """The account's intercom access alone (it polls itself while a sync is to run)."""
    a = db.session.get(Account, account_id)
    if a is None:
        abort(404)
    return render_template("admin/intercom/_account_access.html", a=a)


@bp.route("/accounts/<int:account_id>/intercom/sync", methods=["POST"])
@staff_required(*WRITERS)
def account_intercom_sync(account_id: int):
    """Sync this account's address now."""
    from ..platforms import reconcile

    a = db.session.get(Account, account_id)
    if a is None:
        abort(404)
    reconcile.request_sync(a.id, actor())
    db.session.commit()
    return with_toast(render_template("admin/intercom/_account_access.html", a=a), _("Sync requested."))
