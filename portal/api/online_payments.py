"""ЮKassa's notifications: ``POST /pay/yookassa/notify`` (the URL staff give ЮKassa in the
shop's settings), JSON ``{"type": "notification", "event": "payment.succeeded", "object": {…}}``.

The body is not trusted and needs no secret: only the payment id is taken from it, and the
payment is read back from the service's API with our shop's credentials
(payments/yookassa/service.on_notification); only what that says can credit, once. So a forged
notification (an id we never created, or one the API says is pending or canceled) and a
replayed one move nothing. Answers: 200 once handled (also for an id that is not ours: the
service stops sending it), 400 for what is not a notification, 503 while the service cannot be
read back (ЮKassa sends it again later, for up to 24 hours).
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from ..extensions import csrf, db
from ..payments.yookassa import service

PREFIX = "/pay/yookassa"

bp = Blueprint("yookassa", __name__, url_prefix=PREFIX)
csrf.exempt(bp)
log = logging.getLogger(__name__)


@bp.route("/notify", methods=["POST"])
def notify():
    document = request.get_json(silent=True)
    try:
        outcome = service.on_notification(document)
    except service.ServiceUnavailable as e:
        db.session.rollback()
        log.warning("yookassa notification: cannot read the payment back: %s", e)
        return jsonify({"error": "payment service unavailable, send again later"}), 503
    if outcome == "bad":
        return jsonify({"error": "a notification: {type: notification, event, object: {id}}"}), 400
    if outcome == "unknown":
        log.warning("yookassa notification for a payment we did not create, from %s", request.remote_addr)
    return jsonify({"ok": True, "outcome": outcome}), 200
