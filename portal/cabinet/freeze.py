"""The voluntary freeze in the cabinet:

    POST /cabinet/accounts/<id>/freeze      freeze_account     freeze from today through the chosen day
    POST /cabinet/accounts/<id>/unfreeze    unfreeze_account   end the freeze in force today

The account's status panel (templates/cabinet/_account_status.html, its freeze part
cabinet/_freeze.html) shows the freeze in force and its last day with "Unfreeze now", or the
form (the last day, within the operator's limits, the fee) while freezes are on, or why the
rules refuse one now. While freezes are on, the freeze replaces the open-ended "Block the
account" (which knows no limits). The rules and decisions are portal.billing.freeze; only the
subscriber's own accounts (another id is a 404); a double click freezes once (the form's key).
"""
from __future__ import annotations

import secrets

from flask import flash, g, redirect, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _

from ..billing import freeze, grace, self_service
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Account
from ..web import error_fields
from . import bp
from .views import _own, subscriber_required


def cabinet_freeze(account: Account) -> dict:
    """What the account's freeze part shows: the freeze in force, the rules' offer, a form key."""
    return {"active": freeze.active(account), "offer": freeze.offer(account), "rule": freeze.rule(),
            "nonce": secrets.token_hex(16)}


bp.add_app_template_global(cabinet_freeze, "cabinet_freeze")
bp.add_app_template_global(grace.hold_until, "contract_hold_until")
bp.add_app_template_global(grace.grace_block_on, "contract_block_on")


def _back(account: Account) -> str:
    return url_for("cabinet.account", account_id=account.id)


@bp.route("/accounts/<int:account_id>/freeze", methods=["POST"])
@subscriber_required
def freeze_account(account_id: int):
    """Freeze the account from today through the chosen day; back to its page with what happened."""
    account = _own(self_service.own_account, account_id)
    nonce = request.form.get("nonce", "")
    try:
        if not nonce:
            raise BillingError({"nonce": "required"})
        f, _created = freeze.start(account, request.form.get("until", ""), actor=self_service.actor(g.subscriber),
                                   request_key=f"cabinet:{nonce}"[:100])
        db.session.commit()
    except BillingError as error:
        db.session.rollback()
        field, message = next(iter(error_fields(error).items()))
        flash(_("The account cannot be frozen: %(reason)s.", reason=message) if field != "until"
              else _("Freeze until: %(reason)s.", reason=message), "error")
        return redirect(_back(account), 303)
    flash(_("The account is frozen through %(day)s; charges stop until then.", day=format_date(f.until, "long")), "ok")
    return redirect(_back(account), 303)


@bp.route("/accounts/<int:account_id>/unfreeze", methods=["POST"])
@subscriber_required
def unfreeze_account(account_id: int):
    """End the freeze today: the account is back in service and charged from today."""
    account = _own(self_service.own_account, account_id)
    try:
        freeze.end(account, actor=self_service.actor(g.subscriber))
        db.session.commit()
    except BillingError as error:
        db.session.rollback()
        flash(_("The freeze cannot be ended: %(reason)s.", reason=next(iter(error_fields(error).values()))), "error")
        return redirect(_back(account), 303)
    flash(_("The freeze is over: the account is in service again."), "ok")
    return redirect(_back(account), 303)
