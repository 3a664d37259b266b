"""The «Смотрёшка» page: the connection as the platform needs it (settings, the upsale listen
URLs to give Lifestream's support, the last check), the TV catalog, the drift report with its
fixes, and the latest upsale calls. URL map (reading: any staff; acting: admin or manager):

    GET  /smotreshka                         the page
    POST /smotreshka/check                   job: call the platform, report what works
    POST /smotreshka/import                  job: import the catalog (GET /v2/subscriptions)
    POST /smotreshka/drift                   job: drift report, all accounts or one (login=)
    POST /smotreshka/drift/<id>/push         fix: push billing's state (a reconcile)
    POST /smotreshka/drift/<id>/accept       fix: accept the platform's subscription into billing
    POST /smotreshka/resync                  re-sync every account now (as the schedule does)

Web actions never call the platform: they enqueue a job and answer with its progress row.
"""
from __future__ import annotations

from flask import abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from ..billing import audit
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Account, CatalogService, PlatformConnection, SmotreshkaCall, SmotreshkaDrift
from ..platforms import connections
from ..platforms.smotreshka import console
from ..platforms.smotreshka.settings import from_options
from ..queue import get_queue
from ..web import error_fields, with_toast
from . import bp
from .auth import WRITERS, staff_required
from .jobs import progress_row

DRIFT_KINDS = {
    "missing_on_platform": _l("billing has it, the platform does not"),
    "extra_on_platform": _l("the platform has it, billing does not"),
    "account_missing": _l("no account on the platform"),
    "orphan": _l("platform account unknown to billing"),
}
# Messages of portal.platforms.smotreshka, listed so that pybabel puts them in the catalog.
MESSAGES = [
    _l("a platform account billing does not know is never changed from here"),
    _l("only a subscription the platform has and billing does not can be accepted"),
    _l("no catalog service is bound to this subscription (import the catalog)"),
    _l("not a service of this platform"),
]


def actor() -> str:
    return f"staff:{current_user.login}"


def _public_base() -> str:
    return request.host_url.rstrip("/")


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
        "drift": drift, "logins": logins, "drift_kinds": DRIFT_KINDS,
        "calls": db.session.scalars(select(SmotreshkaCall).order_by(SmotreshkaCall.id.desc()).limit(30)).all(),
        "can_act": current_user.role in WRITERS,
    }


@bp.route("/smotreshka")
@staff_required()
def smotreshka():
    """Connection, listen URLs, catalog, drift report, upsale calls."""
    return render_template("admin/smotreshka/page.html", **_context())


def _start(func: str, label: str, *args):
    job = get_queue("high").enqueue(func, *args, job_timeout=1800)
    return progress_row(job.id, label)


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


@bp.route("/smotreshka/drift/<int:drift_id>/<any(push, accept):action>", methods=["POST"])
@staff_required(*WRITERS)
def smotreshka_fix(drift_id: int, action: str):
    """Fix one difference: push billing's state, or accept the platform's subscription."""
    drift = db.session.get(SmotreshkaDrift, drift_id)
    if drift is None:
        abort(404)
    try:
        if action == "push":
            if drift.account_id is None:
                raise BillingError({"drift": "a platform account billing does not know is never changed from here"})
            console.push(drift.account_id, actor())
            db.session.delete(drift)
            message = _("Billing's state will be pushed to the platform.")
        else:
            console.accept(drift, actor())
            message = _("The subscription is now in billing.")
    except BillingError as e:
        db.session.rollback()
        return render_template("admin/smotreshka/_drift.html", fix_error="; ".join(error_fields(e).values()),
                               **_context()), 422
    db.session.commit()
    return with_toast(render_template("admin/smotreshka/_drift.html", **_context()), message)
