"""The «Смотрёшка» page: the connection as the platform needs it (settings, the upsale listen
URLs to give Lifestream's support, the last check), the TV catalog, the drift report with its
fixes, and the latest upsale calls. URL map (reading: any staff; acting: admin or manager):

    GET  /smotreshka                         the page
    POST /smotreshka/check                   job: call the platform, report what works
    POST /smotreshka/import                  job: import the catalog (GET /v2/subscriptions)
    POST /smotreshka/drift                   job: drift report, all accounts or one (login=)
    POST /smotreshka/drift/<id>/push         fix: push billing's state (a reconcile)
    POST /smotreshka/drift/<id>/accept       fix: accept the platform's subscription into billing
    POST /smotreshka/drift/<id>/end          fix: end in billing what the platform does not have
    POST /smotreshka/platform-changes        what automatic passes do with changes made on the platform
    POST /smotreshka/resync                  re-sync every account now (as the schedule does)
    GET  /accounts/<id>/smotreshka           the account page's TV panel (_account_tv.html)
    POST /accounts/<id>/smotreshka/compare   job: this account's drift report (the panel polls)
    POST /accounts/<id>/smotreshka/push      fix: push billing's state for this account

Web actions never call the platform: they enqueue a job and answer with its progress row.
"""
from __future__ import annotations

from flask import abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from ..billing import audit, outbox
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Account, CatalogService, PlatformConnection, SmotreshkaCall, SmotreshkaDrift, SyncState
from ..platforms import connections
from ..platforms.smotreshka import console
from ..platforms.smotreshka.settings import PLATFORM_CHANGES, from_options
from ..web import error_fields, with_toast
from . import bp
from .auth import WRITERS, actor, staff_required
from .jobs import job_view, progress_row, start_job

DRIFT_KINDS = {
    "missing_on_platform": _l("billing has it, the platform does not"),
    "extra_on_platform": _l("the platform has it, billing does not"),
    "account_missing": _l("no account on the platform"),
    "orphan": _l("platform account unknown to billing"),
}
PLATFORM_CHANGE_RULES = {
    "accept": _l("accept: end the billing service, with its refund"),
    "revert": _l("revert: enable it again on the platform"),
    "report": _l("report: list it in the drift report, change nothing"),
}
# Messages of portal.platforms.smotreshka, listed so that pybabel puts them in the catalog.
MESSAGES = [
    _l("a platform account billing does not know is never changed from here"),
    _l("only a subscription the platform has and billing does not can be accepted"),
    _l("no catalog service is bound to this subscription (import the catalog)"),
    _l("not a service of this platform"),
    _l("only a subscription billing has and the platform does not can be ended"),
    _l("billing holds no such TV service any more"),
    _l("one of accept, revert, report"),
    _l("set up the connection first"),
]


def _public_base() -> str:
    """The portal's base for the upsale callback URLs given to the platform (when the
    connection names none of its own): PUBLIC_URL, else the address of this request."""
    return current_app.config.get("PUBLIC_URL") or request.host_url.rstrip("/")


def _context() -> dict:
    row = db.session.scalar(select(PlatformConnection).filter_by(kind="smotreshka"))
    settings = from_options(row.options if row else None)
    drift = db.session.scalars(select(SmotreshkaDrift).order_by(SmotreshkaDrift.account_id, SmotreshkaDrift.id)
                               .limit(500)).all()
    logins = {a.id: a.login for a in db.session.scalars(select(Account).where(
        Account.id.in_({d.account_id for d in drift if d.account_id})))} if drift else {}
    return {
        "conn": connections.public(row) if row else None,
        "settings": settings,
        "upsale_urls": console.upsale_urls(settings.public_url or _public_base()),
        "last_check": console.last_check(),
        "catalog": db.session.scalars(select(CatalogService).filter_by(platform="smotreshka")
                                      .order_by(CatalogService.external_id)).all(),
        "drift": drift, "logins": logins, "drift_kinds": DRIFT_KINDS, "rules": PLATFORM_CHANGE_RULES,
        "stored_rule": ((row.options or {}).get("platform_changes") if row else None),
        "calls": db.session.scalars(select(SmotreshkaCall).order_by(SmotreshkaCall.id.desc()).limit(30)).all(),
        "can_act": current_user.role in WRITERS,
    }


@bp.route("/smotreshka")
@staff_required()
def smotreshka():
    """Connection, listen URLs, catalog, drift report, upsale calls."""
    return render_template("admin/smotreshka/page.html", **_context())


def _start(func: str, label: str, *args):
    return progress_row(start_job(func, *args, timeout=1800), label)


@bp.route("/smotreshka/check", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_check():
    """Is the platform reachable, does it accept our address, can we read the catalog?"""
    return _start("jobs.smotreshka.check", _("Checking the connection…"), actor(), _public_base())


@bp.route("/smotreshka/import", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_import():
    """Import the platform's subscriptions into the catalog (bound by external id)."""
    return _start("jobs.smotreshka.import_catalog", _("Importing the catalog…"), actor())


@bp.route("/smotreshka/drift", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_drift():
    """The drift report for all accounts, or for one (by login)."""
    login = (request.form.get("login") or "").strip()
    account_id = None
    if login:
        account = db.session.scalar(select(Account).filter_by(login=login))
        if account is None:
            return Markup('<div class="form-error" data-field="login">%s</div>') % _("No account with this login."), 422
        account_id = account.id
    return _start("jobs.smotreshka.drift_report", _("Comparing billing with the platform…"), actor(), account_id)


@bp.route("/smotreshka/resync", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_resync():
    """Reconcile every TV account now against what the platform really has."""
    audit.record(actor(), "smotreshka.resync", None, "re-sync requested", object_type="platform", object_id=None)
    db.session.commit()
    return _start("jobs.smotreshka.scheduled_resync", _("Re-syncing every TV account…"))


@bp.route("/smotreshka/platform-changes", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_platform_changes():
    """What automatic passes do with a subscription switched off on the platform (a connection
    option, audited like any change of the connection)."""
    rule = (request.form.get("platform_changes") or "").strip()
    row = db.session.scalar(select(PlatformConnection).filter_by(kind="smotreshka"))
    try:
        if rule not in PLATFORM_CHANGES:
            raise BillingError({"platform_changes": "one of accept, revert, report"})
        if row is None:
            raise BillingError({"platform_changes": "set up the connection first"})
        connections.save_connection("smotreshka", url=row.url,
                                    options={**(row.options or {}), "platform_changes": rule}, actor=actor())
    except BillingError as e:
        db.session.rollback()
        return render_template("admin/smotreshka/_platform_changes.html", errors=error_fields(e), **_context()), 422
    db.session.commit()
    return with_toast(render_template("admin/smotreshka/_platform_changes.html", errors={}, **_context()),
                      _("Saved."))


@bp.route("/smotreshka/drift/<int:drift_id>/<any(push, accept, end):action>", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_fix(drift_id: int, action: str):
    """Fix one difference either way: push billing's state to the platform, or take the
    platform's into billing (accept its subscription, or end the service it does not have)."""
    drift = db.session.get(SmotreshkaDrift, drift_id)
    if drift is None:
        abort(404)
    panel = request.form.get("panel") == "account" and drift.account_id is not None
    account_id = drift.account_id
    try:
        if action == "push":
            if drift.account_id is None:
                raise BillingError({"drift": "a platform account billing does not know is never changed from here"})
            console.push(drift.account_id, actor())
            console.forget(drift)
            message = _("Billing's state will be pushed to the platform.")
        elif action == "accept":
            console.accept(drift, actor())
            message = _("The subscription is now in billing.")
        else:
            console.end_in_billing(drift, actor())
            message = _("The service is ended in billing.")
    except BillingError as e:
        db.session.rollback()
        if panel:
            return _panel(db.session.get(Account, account_id), fix_error="; ".join(error_fields(e).values())), 422
        return render_template("admin/smotreshka/_drift.html", fix_error="; ".join(error_fields(e).values()),
                               **_context()), 422
    db.session.commit()
    if panel:
        return with_toast(_panel(db.session.get(Account, account_id)), message)
    return with_toast(render_template("admin/smotreshka/_drift.html", **_context()), message)


# -- the account page's panel -------------------------------------------------------------------

def account_tv(a: Account) -> dict | None:
    """What the account page shows about «Смотрёшка»: None for an account that is not on it."""
    if a is None or not outbox.on_platform(a.id, "smotreshka") and db.session.scalar(
            select(SyncState.id).filter_by(account_id=a.id, platform="smotreshka")) is None:
        return None
    from ..platforms.smotreshka import tv

    state = db.session.scalar(select(SyncState).filter_by(account_id=a.id, platform="smotreshka"))
    actual = (state.actual or {}) if state else {}
    return {
        "services": sorted(tv.live(a), key=lambda s: (s.service.iptv_kind != "basic", s.service.name)),
        "state": state, "platform_id": actual.get("id"),
        "last_pass": actual if "read" in actual else None,  # what the last sync read and changed
        "platform_subs": sorted(str(x) for x in actual.get("subscriptions") or []) if actual else None,
        "drift": db.session.scalars(select(SmotreshkaDrift).filter_by(account_id=a.id)
                                    .order_by(SmotreshkaDrift.id)).all(),
        "drift_kinds": DRIFT_KINDS, "can_act": current_user.role in WRITERS,
    }


@bp.app_context_processor
def _smotreshka_globals():
    return {"smotreshka_account_tv": account_tv}


def _panel(a: Account, **extra) -> str:
    return render_template("admin/smotreshka/_account_tv.html", a=a, **extra)


def _account_or_404(account_id: int) -> Account:
    a = db.session.get(Account, account_id)
    if a is None or account_tv(a) is None:
        abort(404)
    return a


@bp.route("/accounts/<int:account_id>/smotreshka")
@staff_required()
def account_smotreshka(account_id: int):
    """The account's TV panel alone (it polls itself while its comparison runs)."""
    job_id = request.args.get("job") or None
    view = job_view(job_id) if job_id else None
    return _panel(_account_or_404(account_id), job_id=job_id,
                  job_running=bool(view and view["state"] in ("queued", "started", "unavailable")))


@bp.route("/accounts/<int:account_id>/smotreshka/compare", methods=["POST"])
@staff_required(*WRITERS)
def account_smotreshka_compare(account_id: int):
    """Compare this account with the platform (a job); the panel shows the result when done."""
    a = _account_or_404(account_id)
    job_id = start_job("jobs.smotreshka.drift_report", actor(), a.id)
    return _panel(a, job_id=job_id, job_running=job_id is not None)


@bp.route("/accounts/<int:account_id>/smotreshka/push", methods=["POST"])
@staff_required(*WRITERS)
def account_smotreshka_push(account_id: int):
    """Push billing's TV state for this account to the platform (a reconcile through the outbox)."""
    a = _account_or_404(account_id)
    console.push(a.id, actor())
    db.session.execute(SmotreshkaDrift.__table__.delete().where(SmotreshkaDrift.account_id == a.id,
                                                                 SmotreshkaDrift.kind != "extra_on_platform"))
    db.session.commit()
    return with_toast(_panel(a), _("Billing's state will be pushed to the platform."))
