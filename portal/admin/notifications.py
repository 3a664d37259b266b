"""Notification channels and delivery logs for staff.

    GET  /notification-channels                   the three channels and what waits or failed
    GET  /notification-channels/<kind>, POST      a channel's settings (admin; secrets never shown)
    GET  /subscribers/<id>/notifications          a subscriber's whole delivery log (?before=)
    POST /notification-deliveries/<id>/retry      send a failed message again (admin, manager)

The subscriber card shows the latest deliveries through ``notification_log`` (a template global).
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from ..billing.errors import BillingError
from ..extensions import db
from ..models import CHANNEL_KINDS, Notice, NotificationDelivery, Subscriber, utcnow
from ..models.notifications import SMTP_SECURITY
from ..notifications import channels, delivery
from ..web import error_fields, int_arg
from . import bp
from .auth import staff_required

CHANNEL_TITLES = {"email": _l("E-mail (SMTP)"), "sms": _l("SMS (SMS.ru gateway)"), "telegram": _l("Telegram bot")}
DELIVERY_TITLES = {"queued": _l("queued"), "sending": _l("sending"), "sent": _l("sent"), "failed": _l("failed"),
                   "cancelled": _l("cancelled (no longer applies)")}
SECURITY_TITLES = {"starttls": "STARTTLS", "ssl": "SSL/TLS", "none": _l("none (plain)")}
PAGE = 50


@bp.app_template_global()
def notification_log(subscriber_id: int, limit: int = 10) -> list[NotificationDelivery]:
    """The subscriber's latest deliveries, newest first (the card's panel)."""
    return db.session.scalars(select(NotificationDelivery).where(NotificationDelivery.subscriber_id == subscriber_id)
                              .order_by(NotificationDelivery.id.desc()).limit(limit)).all()


@bp.app_template_global()
def delivery_title(state: str) -> str:
    return str(DELIVERY_TITLES.get(state, state))


@bp.app_template_global()
def channel_title(kind: str) -> str:
    return str(CHANNEL_TITLES.get(kind, kind))


@bp.route("/notification-channels")
@staff_required()
def notification_channels():
    counts = dict(((c, s), n) for c, s, n in db.session.execute(
        select(NotificationDelivery.channel, NotificationDelivery.state, func.count())
        .where(NotificationDelivery.state.in_(("queued", "sending", "failed")))
        .group_by(NotificationDelivery.channel, NotificationDelivery.state)))
    rows = [(kind, channels.row(kind)) for kind in CHANNEL_KINDS]
    return render_template("admin/notifications/channels.html", rows=rows, counts=counts)


@bp.route("/notification-channels/<kind>", methods=["GET", "POST"])
@staff_required("admin")
def notification_channel(kind: str):
    if kind not in CHANNEL_KINDS:
        abort(404)
    current = channels.row(kind)
    if request.method == "GET":
        return _channel_page(kind, channels.values(current, kind), {}, current)
    secret_field = channels.SECRET_FIELD[kind]
    data = {k: request.form.get(k, "") for k in (*channels.FIELDS[kind], "rate", "timeout", secret_field)}
    data["enabled"] = "enabled" in request.form
    try:
        channels.save(kind, data, actor=_actor())
    except BillingError as e:
        db.session.rollback()
        shown = {k: v for k, v in data.items() if k != secret_field}
        return _channel_page(kind, shown, error_fields(e), channels.row(kind), 422)
    db.session.commit()
    flash(_("The channel «%(title)s» is saved.", title=CHANNEL_TITLES[kind]), "ok")
    return redirect(url_for("admin.notification_channels"), 303)


def _actor() -> str:
    from .auth import actor

    return actor()


def _channel_page(kind, values, errors, current, status=200):
    return render_template("admin/notifications/channel.html", kind=kind, title=CHANNEL_TITLES[kind], v=values,
                           errors=errors, current=current, secret_field=channels.SECRET_FIELD[kind],
                           security=[(s, str(SECURITY_TITLES[s])) for s in SMTP_SECURITY],
                           nav_section="admin.notification_channels"), status


@bp.route("/subscribers/<int:subscriber_id>/notifications")
@staff_required()
def subscriber_notifications(subscriber_id: int):
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        abort(404)
    q = select(NotificationDelivery).where(NotificationDelivery.subscriber_id == subscriber_id)
    before = int_arg("before")
    if before:
        q = q.where(NotificationDelivery.id < before)
    rows = db.session.scalars(q.order_by(NotificationDelivery.id.desc()).limit(PAGE)).all()
    return render_template("admin/notifications/log.html", s=subscriber, rows=rows, more=len(rows) == PAGE,
                           nav_section="admin.subscribers")


@bp.route("/notification-deliveries/<int:delivery_id>/retry", methods=["POST"])
@staff_required("admin", "manager")
def retry_delivery(delivery_id: int):
    d = db.session.get(NotificationDelivery, delivery_id)
    if d is None:
        abort(404)
    subscriber_id = d.subscriber_id
    critical = bool(db.session.scalar(select(Notice.critical).where(Notice.id == d.notice_id)))
    changed = db.session.execute(update(NotificationDelivery).where(
        NotificationDelivery.id == delivery_id, NotificationDelivery.state == "failed")
        # staff's retry starts anew: a new give-up window (the age is measured from created_at), no
        # old reason, and staff decide that a message which may have gone out goes again
        .values(state="queued", attempts=0, resends=0, next_attempt_at=utcnow(), created_at=utcnow(), enqueued_at=None,
                last_error=None)).rowcount
    db.session.commit()
    if changed:
        delivery.enqueue([(delivery_id, critical)], mark=True)
        flash(_("The message is queued again."), "ok")
    return redirect(request.form.get("next") or url_for("admin.subscriber_notifications",
                                                        subscriber_id=subscriber_id), 303)
