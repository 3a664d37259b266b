"""Hosting in the cabinet (resold through a selling BILLmanager):

    GET  /cabinet/hosting          the subscriber's hosting services and the order form
    POST /cabinet/hosting/order    order an enabled tariff: paid from the contract now, then
                                   ordered on the seller by a job

Only the subscriber's own accounts may pay; anything else answers 404.
"""
from __future__ import annotations

import secrets

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from ..billing import quotes, self_service
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Account, BmService, BmTariff, CatalogService, Contract
from ..platforms.billmanager import orders
from ..web import error_fields, form_int, form_text
from . import bp
from .views import subscriber_required


def _own_accounts(subscriber) -> list[Account]:
    return list(db.session.scalars(select(Account).join(Contract).where(Contract.subscriber_id == subscriber.id)
                                   .order_by(Account.id)))


def hosting_services(subscriber) -> list[BmService]:
    return list(db.session.scalars(select(BmService).join(Account).join(Contract).where(
        Contract.subscriber_id == subscriber.id, BmService.state != "deleted").order_by(BmService.id)))


def _nonce_key(nonce: str | None) -> str | None:
    return f"cabinet:{nonce}" if nonce else None


def _page(errors=None, values=None, status=200):
    s = g.subscriber
    tariffs = db.session.scalars(select(BmTariff).filter_by(enabled=True).order_by(BmTariff.price)).all()
    # only an active account can pay for an order (a blocked one is refused): the form offers those
    payers = [a for a in _own_accounts(s) if a.status == "active"]
    # what each tariff charges today, before "Order and pay" (the same for any active account)
    today = {t.id: quotes.assign_charge(payers[0], db.session.get(CatalogService, t.service_id))
             for t in tariffs} if payers else {}
    return render_template("cabinet/billmanager/hosting.html", services=hosting_services(s), tariffs=tariffs,
                           accounts=payers, charged_today=today,
                           blocked=any(a.status == "blocked" for a in _own_accounts(s)),
                           errors=errors or {}, v=values or {},
                           nonce=(values or {}).get("nonce") or secrets.token_hex(16)), status


@bp.route("/hosting")
@subscriber_required
def hosting():
    """My hosting: what I have, and what I can order."""
    return _page()


@bp.route("/hosting/order", methods=["POST"])
@subscriber_required
def hosting_order():
    account_id = form_int("account_id")
    account = next((a for a in _own_accounts(g.subscriber) if a.id == account_id), None)
    if account_id is not None and account is None:
        abort(404)
    tariff_id = form_int("tariff_id")
    tariff = db.session.get(BmTariff, tariff_id) if isinstance(tariff_id, int) else None
    try:
        svc = orders.place_order(account, tariff, domain=form_text("domain"),
                                 actor=self_service.actor(g.subscriber),
                                 order_key=_nonce_key(request.form.get("nonce")))
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return _page(error_fields(e), request.form, 422)
    orders.enqueue_order(svc.id)
    flash(_("Thank you! The order is paid and the service is being set up."), "ok")
    return redirect(url_for("cabinet.hosting"), 303)


@bp.app_context_processor
def _hosting_helpers():
    def cabinet_hosting(subscriber):
        if subscriber is None:
            return {"services": [], "orderable": False}
        return {"services": hosting_services(subscriber),
                "orderable": db.session.scalar(select(BmTariff.id).filter_by(enabled=True).limit(1)) is not None}
    return {"cabinet_hosting": cabinet_hosting, "bm_shown_state": orders.shown_state}
