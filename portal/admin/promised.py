"""Promised payments, staff side. The URL map of the area:

    GET  /promised-payments                        promised_rules   the rules (admin) and the payments in force
    POST /promised-payments                        save_promised_rules            (admin only)
    POST /contracts/<id>/promised                  take_promised    give one on the contract page (managers, admins)

The contract page shows the panel (templates/admin/_promised_contract.html): the one in force,
or the offer billing makes (amount, days, fee, end date, balance after) with its button, or why
the rules refuse it. The rules and the decisions are portal.billing.promised.
"""
from __future__ import annotations

import secrets

from flask import current_app, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..billing import promised
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Contract, PromisedPayment, Tariff
from ..web import form_ids, form_text
from . import bp
from .auth import WRITERS, actor, staff_required
from .pages import attempt, form_bool, get_or_404, render_contract

# Billing's refusals and field messages, listed so that pybabel puts them in the catalog.
MESSAGES = [_l("promised payments are off"), _l("the contract is disabled"), _l("not allowed for this tariff"),
            _l("a promised payment is in force already"),
            _l("the limit of promised payments for this month is reached"),
            _l("the balance is fine: there is no block to lift"),
            _l("blocked by a manager: money does not lift that block"),
            _l("the amount needed is over the maximum of a promised payment"),
            _l("the promised amount is too small to lift the block"),
            _l("from 1 to 90 days"), _l("from 1 to 31"), _l("over the maximum"),
            _l("the fee must be below the maximum"), _l("the fee must be below the amount"),
            _l("already used")]
IN_FORCE_SHOWN = 200


def staff_promised(contract: Contract) -> dict:
    """What the contract page's panel shows: the payment in force, or billing's offer (with a
    one-time key for its form)."""
    return {"active": promised.active(contract), "offer": promised.offer(contract), "nonce": secrets.token_hex(16)}


bp.add_app_template_global(staff_promised, "staff_promised")


def _rules_page(errors: dict | None = None, status: int = 200):
    in_force = db.session.scalars(
        select(PromisedPayment).where(PromisedPayment.status == "active")
        .order_by(PromisedPayment.until, PromisedPayment.id).limit(IN_FORCE_SHOWN)).all()
    tariffs = db.session.scalars(select(Tariff).where(Tariff.is_multi.is_(False)).order_by(Tariff.name)).all()
    r = promised.rule()
    values = request.form if errors else None
    return render_template("admin/promised.html", rule=r, errors=errors or {}, values=values, tariffs=tariffs,
                           chosen={str(t.id) for t in r.tariffs} if values is None
                           else set(request.form.getlist("tariff_ids")),
                           in_force=in_force), status


@bp.route("/promised-payments")
@staff_required("admin")
def promised_rules():
    """The operator's rules for promised payments, and the payments in force."""
    return _rules_page()


@bp.route("/promised-payments", methods=["POST"])
@staff_required("admin")
def save_promised_rules():
    def save():
        data = {"enabled": form_bool("enabled"),
                "amount_mode": form_text("amount_mode"), "amount": form_text("amount"),
                "max_amount": form_text("max_amount"), "days": form_text("days"),
                "per_month": form_text("per_month"), "fee": form_text("fee"), "tariff_ids": form_ids("tariff_ids")}
        return promised.save_rule(data, actor=actor())

    return attempt(save, _("Promised payment rules saved."),
                   url_for("admin.promised_rules"), lambda errors: _rules_page(errors)[0])


@bp.route("/contracts/<int:contract_id>/promised", methods=["POST"])
@staff_required(*WRITERS)
def take_promised(contract_id: int):
    """Give the contract a promised payment (the panel showed the offer first). The form's
    one-time key makes a double submit give one."""
    c = get_or_404(Contract, contract_id)
    nonce = request.form.get("nonce", "")

    def take():
        if not nonce:
            raise BillingError({"nonce": "required"})
        return promised.take(c, actor=actor(), request_key=f"staff:{nonce}"[:100])

    def said(result) -> str:
        payment, _created = result
        return _("Promised payment of %(amount)s given until %(day)s.",
                 amount=format_amount(payment.amount), day=format_date(payment.until, "short"))

    return attempt(take, said, url_for("admin.contract", contract_id=c.id),
                   lambda errors: render_contract(c, errors, "promised"))


def format_amount(amount) -> str:
    """An amount in a message, as the pages' ``money`` filter writes it."""
    return current_app.jinja_env.filters["money"](amount)
