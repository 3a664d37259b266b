"""One payment seen by staff: where it came from, who took it, its storno (cancelling it, admins
only: a new ledger entry, never a change to the payment) and, for a cash payment, its printable
receipt. The payments list is portal/admin/lists.py's."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..billing import ledger
from ..billing.errors import BillingError, NotFound
from ..extensions import db
from ..models import Contract, LedgerEntry, StaffUser
from ..models.ledger import PAYMENT_CASH
from ..web import error_fields, money
from . import bp
from .auth import actor, staff_required


def _payment_or_404(entry_id: int) -> LedgerEntry:
    entry = db.session.get(LedgerEntry, entry_id)
    if entry is None or entry.kind != "payment":
        abort(404)
    return entry


def render_payment(entry: LedgerEntry, errors: dict | None = None, status: int = 200):
    cashier = db.session.get(StaffUser, entry.cashier_id) if entry.cashier_id else None
    return render_template("admin/payment.html", e=entry, c=db.session.get(Contract, entry.contract_id),
                           cashier=cashier, storno=ledger.stornos_of([entry.id]).get(entry.id),
                           errors=errors or {}, values=request.form if errors else {}), status


@bp.route("/payments/<int:entry_id>")
@staff_required()
def payment(entry_id: int):
    """A payment: amount, contract, source, cashier, and whether (who, when, why) it was cancelled."""
    return render_payment(_payment_or_404(entry_id))


@bp.route("/payments/<int:entry_id>/storno", methods=["POST"])
@staff_required("admin")
def storno_payment(entry_id: int):
    """Cancel a payment with a reason: one storno whatever the clicks (billing.ledger.storno)."""
    try:
        entry, created = ledger.storno(entry_id, request.form.get("reason"), actor=actor())
        db.session.commit()
    except NotFound as e:
        db.session.rollback()
        field, message = next(iter(error_fields(e).items()))  # (the 422 page names the field)
        return render_template("errors/422.html", field=field, message=message), 404
    except BillingError as e:
        db.session.rollback()
        return render_payment(_payment_or_404(entry_id), error_fields(e), 422)
    flash(_("Payment cancelled: %(amount)s taken off the balance.", amount=money(-entry.amount)) if created
          else _("This payment was cancelled already: nothing was posted again."), "ok")
    return redirect(url_for("admin.payment", entry_id=entry_id), code=303)


@bp.route("/payments/<int:entry_id>/receipt")
@staff_required()
def payment_receipt(entry_id: int):
    """A cash payment's receipt to print (a payment from elsewhere has its own documents)."""
    entry = _payment_or_404(entry_id)
    if entry.source != PAYMENT_CASH:
        abort(404)
    contract = db.session.get(Contract, entry.contract_id)
    cashier = db.session.get(StaffUser, entry.cashier_id) if entry.cashier_id else None
    return render_template("admin/payment_receipt.html", e=entry, c=contract, cashier=cashier,
                           storno=ledger.stornos_of([entry.id]).get(entry.id))
