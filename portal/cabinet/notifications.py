"""The subscriber's notification preferences: which channels (e-mail, SMS, Telegram), only
service-critical messages, the language of the messages; linking a Telegram chat through the
bot's deep link (portal.notifications.preferences says how).

    GET  /cabinet/notifications                  the form, and the Telegram link state
    POST /cabinet/notifications                  save the choices
    POST /cabinet/notifications/telegram         a new one-time deep link
    POST /cabinet/notifications/telegram/unlink  forget the linked chat
"""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..billing.errors import BillingError
from ..extensions import db
from ..notifications import preferences
from ..web import error_fields
from . import bp
from .views import subscriber_required


def _page(values, errors=None, link=None, status=200):
    return render_template("cabinet/notifications/preferences.html", v=values, errors=errors or {},
                           link=link, bot=preferences.bot_username(),
                           addresses=preferences.addresses(g.subscriber, preferences.get(g.subscriber.id))), status


@bp.route("/notifications", methods=["GET", "POST"])
@subscriber_required
def notification_preferences():
    if request.method == "GET":
        return _page(preferences.values(preferences.get(g.subscriber.id)))
    data = {k: request.form.get(k) for k in ("email", "sms", "telegram", "only_critical", "locale")}
    try:
        preferences.save(g.subscriber.id, data, actor=f"cabinet:{g.subscriber.cabinet_login}")
    except BillingError as e:
        db.session.rollback()
        return _page({**preferences.values(preferences.get(g.subscriber.id)), **data}, error_fields(e), status=422)
    db.session.commit()
    flash(_("Notification settings are saved."), "ok")
    return redirect(url_for("cabinet.notification_preferences"), 303)


@bp.route("/notifications/telegram", methods=["POST"])
@subscriber_required
def telegram_link():
    token = preferences.link_token(g.subscriber.id)
    link = preferences.deep_link(token)
    db.session.commit()
    return _page(preferences.values(preferences.get(g.subscriber.id)), link={"url": link, "token": token})


@bp.route("/notifications/telegram/unlink", methods=["POST"])
@subscriber_required
def telegram_unlink():
    preferences.unlink(g.subscriber.id, actor=f"cabinet:{g.subscriber.cabinet_login}")
    db.session.commit()
    flash(_("Telegram is unlinked: messages no longer go there."), "ok")
    return redirect(url_for("cabinet.notification_preferences"), 303)
