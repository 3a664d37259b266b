"""«Смотрёшка» self-service in the cabinet (only when staff switched it on in the connection):

    GET  /cabinet/tv/<account_id>            the account's TV: basic, additional, what can be taken
    POST /cabinet/tv/<account_id>/preview    what a change costs and the balance after (HTMX fragment)
    POST /cabinet/tv/<account_id>/confirm    do it (checked again; refused when money does not cover it)

The platform hears of the change through the outbox like any other change.
"""
from __future__ import annotations

import secrets

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..billing import self_service
from ..billing.errors import BillingError
from ..extensions import db
from ..platforms.smotreshka import console, tv
from ..web import error_fields, form_int, is_htmx
from . import bp
from .views import _own, subscriber_required

# the TV messages of billing, listed so that pybabel puts them in the catalog
MESSAGES = [_l("no such TV service"), _l("only an additional service you have can be removed"),
            _l("your tariff does not offer this service"), _l("you have this service already"),
            _l("switch to a basic service, add an additional one"), _l("the account is not active"),
            _l("not enough money on the balance"), _l("the account has this service already")]


@bp.context_processor
def smotreshka_context():
    return {"smotreshka_tv": tv, "smotreshka_on": console.self_service_enabled}


def _account(account_id: int):
    if not console.self_service_enabled():
        abort(404)
    return _own(self_service.own_account, account_id)


@bp.route("/tv/<int:account_id>")
@subscriber_required
def tv_page(account_id: int):
    """My TV on this account: the basic, the additional ones, what else my tariff offers."""
    account = _account(account_id)
    return render_template("cabinet/smotreshka/tv.html", account=account, tv=tv)


@bp.route("/tv/<int:account_id>/preview", methods=["POST"])
@subscriber_required
def tv_preview(account_id: int):
    """The price and the effect on my balance, with a confirm button (or why not)."""
    account = _account(account_id)
    try:
        p = tv.plan(account, request.form.get("action", ""), form_int("service_id"))
    except BillingError as e:
        return render_template("cabinet/smotreshka/_confirm.html", account=account, p=None,
                               error=next(iter(error_fields(e).values()))), 422
    return render_template("cabinet/smotreshka/_confirm.html", account=account, p=p,
                           error=_(p["error"]) if p["error"] else None, nonce=secrets.token_hex(16))


@bp.route("/tv/<int:account_id>/confirm", methods=["POST"])
@subscriber_required
def tv_confirm(account_id: int):
    """Do the change I confirmed."""
    account = _account(account_id)
    try:
        # the form's one-time key: a second click of this confirm finds the change done
        nonce = request.form.get("nonce")
        tv.apply_plan(account, request.form.get("action", ""), form_int("service_id"),
                      actor=self_service.actor(g.subscriber), order_key=f"cabinet-tv:{nonce}" if nonce else None)
    except BillingError as e:
        db.session.rollback()
        message = next(iter(error_fields(e).values()))
        if is_htmx():
            return render_template("cabinet/smotreshka/_confirm.html", account=account, p=None, error=message), 409
        flash(message, "error")
        return redirect(url_for("cabinet.tv_page", account_id=account_id))
    db.session.commit()
    flash(_("Done: your TV is being updated."), "ok")
    target = url_for("cabinet.tv_page", account_id=account_id)
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)
