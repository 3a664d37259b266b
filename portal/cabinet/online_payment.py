"""Paying online from the cabinet (ЮKassa):

    POST /cabinet/contracts/<id>/pay        pay_online        create the payment, then to …/go
    GET  /cabinet/online-payments/<id>/go   online_payment_go on to the service's payment page
    GET  /cabinet/online-payments/<id>      online_payment    the return page: read it back, show it

The form (templates/cabinet/_online_pay.html) sits on the overview's and the contract page's
contract, the amount prefilled with what lifts the balance block. The return page reads the
payment back from the service (a webhook may come before or after it: one credit either way,
billing/online_payments.py). Only the subscriber's own contracts and payments: others are a 404.
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..billing import online_payments as op
from ..billing import self_service
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Contract, OnlinePayment
from ..notifications.links import external_url
from ..payments.yookassa import reasons, service
from ..web import error_fields
from . import bp
from .views import _own, subscriber_required


def cabinet_online_pay(contract: Contract) -> dict | None:
    """The pay form's figures, or None when online payment is not set up."""
    s = op.shop()
    if s is None or not s.enabled:
        return None
    return {"amount": op.suggested_amount(contract, s), "min": s.min_sum, "max": s.max_sum}


bp.add_app_template_global(cabinet_online_pay, "cabinet_online_pay")


@bp.route("/contracts/<int:contract_id>/pay", methods=["POST"])
@subscriber_required
def pay_online(contract_id: int):
    contract = _own(self_service.own_contract, contract_id)
    back = url_for("cabinet.contract", contract_id=contract.id) if request.form.get("back") == "contract" \
        else url_for("cabinet.home")
    try:
        payment = service.create(contract, request.form.get("amount", ""), actor=self_service.actor(g.subscriber),
                                 return_url=lambda pk: external_url("cabinet.online_payment", payment_id=pk))
    except BillingError as error:
        db.session.rollback()
        flash(_("Online payment is not possible: %(reason)s.", reason="; ".join(error_fields(error).values())), "error")
        return redirect(back, 303)
    except service.ServiceUnavailable:
        flash(_("The payment service is not answering now; nothing was charged. Please try again later."), "error")
        return redirect(back, 303)
    return redirect(url_for("cabinet.online_payment_go", payment_id=payment.id), 303)


@bp.route("/online-payments/<int:payment_id>/go")
@subscriber_required
def online_payment_go(payment_id: int):
    """On to the service's payment page. A page of ours that moves on by itself (and has the
    link), not a redirect from the form's POST: the cabinet's CSP (form-action 'self') forbids a
    form's redirect to another site, and should, while a page's own navigation is the payer's."""
    payment = _own_payment(payment_id)
    if payment.state != "pending" or not payment.confirmation_url:
        return redirect(url_for("cabinet.online_payment", payment_id=payment.id), 303)
    return render_template("cabinet/online_payment_go.html", payment=payment)


def _own_payment(payment_id: int) -> OnlinePayment:
    payment = db.session.get(OnlinePayment, payment_id)
    if payment is None:
        abort(404)
    _own(self_service.own_contract, payment.contract_id)
    return payment


@bp.route("/online-payments/<int:payment_id>")
@subscriber_required
def online_payment(payment_id: int):
    payment = _own_payment(payment_id)
    unavailable = False
    if payment.state not in op.FINAL and payment.payment_id:
        try:
            service.confirm(payment, actor=op.ACTOR)
        except service.ServiceUnavailable:
            unavailable = True
        payment = db.session.get(OnlinePayment, payment_id)
    return render_template("cabinet/online_payment.html", payment=payment, contract=payment.contract,
                           unavailable=unavailable, reason=reasons.cancel_reason(payment.error))
