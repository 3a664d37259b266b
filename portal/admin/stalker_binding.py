"""The account page's Stalker panel: the Stalker user the account is bound to, and what staff do
about a conflict (issue 13). URL map (reading: any staff; acting: admin or manager):

    GET  /accounts/<id>/stalker          the panel alone (templates/admin/stalker/_binding.html)
    POST /accounts/<id>/stalker/link     the conflicting Stalker user is this subscriber: bind it
    POST /accounts/<id>/stalker/login    create the account's Stalker user with another login

Both actions bind or rename in billing and ask for a sync: the worker writes billing's data
onto the user (the web request never calls Stalker).
"""
from __future__ import annotations

from flask import abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from ..billing import outbox
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Account, SyncState
from ..platforms import reconcile
from ..platforms.stalker import binding
from ..web import error_fields, with_toast
from . import bp
from .auth import WRITERS, actor, staff_required

HOW = {"created": _l("created by billing"), "imported": _l("added from Stalker with “+”"),
       "linked": _l("linked by staff"), "migrated": _l("found by the sync before bindings were kept")}
# Messages of portal.platforms.stalker.binding, listed so that pybabel puts them in the catalog.
MESSAGES = [
    _l("no Stalker user to link: sync the account first"),
    _l("the account is bound to a Stalker user already"),
    _l("that is the login Stalker has for another user"),
    _l("the Stalker user has no login, account number or MAC to find it by"),
]


def stalker_panel(a: Account) -> dict | None:
    """What the account page shows about Stalker: None for an account that is not on it."""
    row = binding.get(a.id) if a is not None else None
    state = db.session.scalar(select(SyncState).filter_by(account_id=a.id, platform="stalker")) if a else None
    if a is None or (row is None and state is None and not outbox.on_platform(a.id, "stalker")):
        return None
    conflict = (row.conflict or None) if row is not None else None
    return {"binding": row, "state": state, "conflict": conflict, "how": HOW,
            "not_in_plan": ((state.actual or {}).get("not_in_plan") or []) if state and state.state == "ok" else [],
            "can_act": current_user.role in WRITERS}


@bp.app_context_processor
def _stalker_binding_globals():
    return {"stalker_panel": stalker_panel}


def _panel(a: Account, **extra) -> str:
    return render_template("admin/stalker/_binding.html", a=a, **extra)


def _account_or_404(account_id: int) -> Account:
    a = db.session.get(Account, account_id)
    if a is None or stalker_panel(a) is None:
        abort(404)
    return a


@bp.route("/accounts/<int:account_id>/stalker")
@staff_required()
def account_stalker(account_id: int):
    """The account's Stalker panel alone."""
    return _panel(_account_or_404(account_id))


@bp.route("/accounts/<int:account_id>/stalker/link", methods=["POST"])
@staff_required(*WRITERS)
def account_stalker_link(account_id: int):
    """Staff confirm the Stalker user of the conflict is this subscriber: bind it and sync."""
    a = _account_or_404(account_id)
    try:
        binding.link(a.id, actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _panel(a, errors=error_fields(e)), 422
    reconcile.request_sync(a.id, actor())
    db.session.commit()
    return with_toast(_panel(a), _("Linked: billing's data will be written onto this Stalker user."))


@bp.route("/accounts/<int:account_id>/stalker/login", methods=["POST"])
@staff_required(*WRITERS)
def account_stalker_login(account_id: int):
    """Create the account's Stalker user under another login (its own is a stranger's there)."""
    a = _account_or_404(account_id)
    try:
        binding.change_login(a.id, request.form.get("login", ""), actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _panel(a, errors=error_fields(e), login=request.form.get("login", "")), 422
    reconcile.request_sync(a.id, actor())
    db.session.commit()
    return with_toast(_panel(a), _("The Stalker user will be created with the new login."))
