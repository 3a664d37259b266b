"""The promised payment in the cabinet:

    POST /cabinet/contracts/<id>/promised    take_promised    take one (the preview is on the page)

The overview and the contract page show, on each contract, the promised payment in force and
its last day, or, while the balance blocks the accounts, what one would be (amount, days, fee,
the day it ends, the balance after) behind a button, with "Confirm"; or why the rules refuse it
(templates/cabinet/_promised.html). Only the subscriber's own contracts: another id is a 404.
"""
from __future__ import annotations

import secrets

from flask import current_app, flash, g, redirect, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _

from ..billing import promised, self_service
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Contract
from ..web import error_fields
from . import bp
from .views import _own, subscriber_required


def cabinet_promised(contract: Contract) -> dict:
    """What a contract's panel shows: the payment in force, or billing's offer (and a one-time
    key for its form). A contract that owes nothing and has none in force shows nothing."""
    return {"active": promised.active(contract), "offer": promised.offer(contract), "nonce": secrets.token_hex(16)}


bp.add_app_template_global(cabinet_promised, "cabinet_promised")


@bp.route("/contracts/<int:contract_id>/promised", methods=["POST"])
@subscriber_required
def take_promised(contract_id: int):
    """Take the promised payment shown; back to the page it was taken on, with what happened.
    A repeat of the form (a double click) takes nothing more."""
    contract = _own(self_service.own_contract, contract_id)
    back = url_for("cabinet.contract", contract_id=contract.id) if request.form.get("back") == "contract" \
        else url_for("cabinet.home")
    nonce = request.form.get("nonce", "")
    try:
        if not nonce:
            raise BillingError({"nonce": "required"})
        payment, _created = promised.take(contract, actor=self_service.actor(g.subscriber),
                                          request_key=f"cabinet:{nonce}"[:100])
        db.session.commit()
    except BillingError as error:
        db.session.rollback()
        flash(_("A promised payment cannot be taken: %(reason)s.", reason=next(iter(error_fields(error).values()))),
              "error")
        return redirect(back, 303)
    flash(_("A promised payment of %(amount)s is credited; it is in force until %(day)s inclusive.",
            amount=_money(payment.amount), day=format_date(payment.until, "short")), "ok")
    return redirect(back, 303)


def _money(amount) -> str:
    return current_app.jinja_env.filters["money"](amount)  # as the pages write amounts
