"""Online payments (ЮKassa) for staff: the list with each payment's state, a re-check that
reads a payment back from the service (and credits it if it succeeded: billing decides, once),
and the shop's settings (admins; the shop id and the secret key are stored encrypted, the id shown
to admins in the form as the identifier it is, the secret never shown back).

    GET  /online-payments                   the payments, newest first; ?state=, ?before=
    POST /online-payments/<id>/recheck      read it back from the service
    GET  /online-payments/shop, POST        the shop's settings (admin)
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..billing import online_payments as op
from ..billing.errors import BillingError
from ..extensions import db
from ..models import ONLINE_PAYMENT_STATES, OnlinePayment
from ..notifications.links import external_url
from ..payments.yookassa import reasons, service
from ..web import error_fields, int_arg
from . import bp
from .auth import actor, staff_required

STATE_TITLES = {"new": _l("being created"), "failed": _l("not created"), "pending": _l("waiting for the payer"),
                "waiting_for_capture": _l("waiting for capture"), "succeeded": _l("paid"),
                "canceled": _l("canceled")}
VAT_TITLES = {1: _l("no VAT"), 2: "0 %", 3: "10 %", 4: "20 %", 5: "10/110", 6: "20/120", 7: "5 %", 8: "7 %",
              9: "5/105", 10: "7/107"}
PAGE = 100


@bp.route("/online-payments")
@staff_required()
def online_payments():
    state = request.args.get("state")
    state = state if state in ONLINE_PAYMENT_STATES else None
    rows = op.recent(PAGE, state, int_arg("before"))
    return render_template("admin/online_payments.html", rows=rows, state=state, states=STATE_TITLES,
                           shop=op.shop(), more=len(rows) == PAGE, shown_note=reasons.shown_note)


@bp.route("/online-payments/<int:payment_id>/recheck", methods=["POST"])
@staff_required("admin", "manager")
def online_payment_recheck(payment_id: int):
    payment = db.session.get(OnlinePayment, payment_id)
    if payment is None:
        abort(404)
    try:
        credited = service.confirm(payment, actor=actor())
    except service.ServiceUnavailable as e:
        flash(_("The payment service did not answer: %(error)s", error=str(e)[:300]), "error")
        return redirect(url_for("admin.online_payments"), 303)
    payment = db.session.get(OnlinePayment, payment_id)
    flash(_("Payment %(id)s: %(state)s.", id=payment.payment_id or payment.id, state=STATE_TITLES[payment.state])
          + (" " + _("Credited now.") if credited else ""), "ok")
    return redirect(url_for("admin.online_payments"), 303)


def _form() -> dict:
    f = request.form
    return {k: f.get(k, "") for k in ("api_url", "shop_id", "secret", "vat_code", "payment_subject", "payment_mode",
                                      "min_sum", "max_sum", "timeout")} | \
        {"receipt": "receipt" in f, "enabled": "enabled" in f}


@bp.route("/online-payments/shop", methods=["GET", "POST"])
@staff_required("admin")
def online_shop():
    shop = op.shop()
    if request.method == "GET":
        return _shop_page(op.shop_values(shop), {}, shop)
    data = _form()
    try:
        op.save_shop(data, actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _shop_page({k: v for k, v in data.items() if k != "secret"}, error_fields(e), op.shop(), 422)
    db.session.commit()
    flash(_("The ЮKassa shop settings are saved."), "ok")
    return redirect(url_for("admin.online_shop"), 303)


def _shop_page(values, errors, shop, status=200):
    return render_template("admin/online_shop.html", v=values, errors=errors, shop=shop,
                           vat_codes=[(k, str(t)) for k, t in VAT_TITLES.items()],
                           subjects=[(s, s) for s in op.PAYMENT_SUBJECTS], modes=[(m, m) for m in op.PAYMENT_MODES],
                           webhook_url=external_url("yookassa.notify"),
                           nav_section="admin.online_payments"), status
