"""Message templates and bulk messages, staff side. The URL map of the area:

    GET  /notification-templates                               notification_templates  every event x channel x language
    GET  /notification-templates/<event>/<channel>/<locale>    edit_notification_template
    POST /notification-templates/<event>/<channel>/<locale>    save_notification_template      (admin only)
    POST /notification-templates/<...>/preview                 preview_notification_template   the draft on real data
    POST /notification-templates/<...>/reset                   reset_notification_template     back to the default
    GET  /bulk-messages                                        bulk_messages       those sent: who, when, filter, count
    GET  /bulk-messages/new                                    new_bulk_message    the form (with a one-time key)
    POST /bulk-messages/preview                                preview_bulk_message  the count, one recipient's message
    POST /bulk-messages                                        send_bulk_message

The preview renders the draft (not the saved template) for a contract staff pick by number:
its subscriber's name, the contract's number and balance, and the event's data from that
contract's latest notice of the event, or sample values when it has none. The rendering and the
rules are portal.notifications.templates and .bulk.
"""
from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..billing.errors import BillingError
from ..extensions import db
from ..models import (
    ACCOUNT_STATUSES,
    NOTICE_EVENTS,
    Agent,
    BulkMessage,
    Contract,
    Notice,
    NotificationTemplate,
    Tariff,
)
from ..notifications import bulk, templates
from ..web import error_fields, is_htmx, state_title
from . import bp
from .auth import WRITERS, actor, staff_required

EVENT_TITLES = {
    "low_balance": _l("Low balance"), "blocked": _l("Blocked for balance"),
    "payment_received": _l("Payment received"), "promised_expiring": _l("Promised payment ends"),
    "service_assigned": _l("Service assigned"), "service_ended": _l("Service ended"),
    "service_bought": _l("Service bought"), "freeze_started": _l("Freeze started"),
    "freeze_ended": _l("Freeze ended"), "bulk": _l("Bulk message"),
}
# Billing's field messages of the bulk form, listed so that pybabel puts them in the catalog.
MESSAGES = [_l("an amount with at most two decimal places"), _l("not a valid choice")]
CHANNEL_TITLES = {"email": "E-mail", "sms": "SMS", "telegram": "Telegram"}
LOCALE_TITLES = {"ru": "Русский", "en": "English"}
BULK_SHOWN = 100


def _known(event: str, channel: str, locale: str) -> None:
    if event not in NOTICE_EVENTS or channel not in templates.CHANNELS or locale not in templates.LOCALES:
        abort(404)


def problem_text(problem: templates.Problem) -> str:
    """A template's problem in the reader's language, with its line when known."""
    if problem.kind == "too_long":
        return _("at most %(n)s characters", n=problem.detail)
    text = {"empty": _("required"), "nul": _("must not contain NUL characters"),
            "syntax": _("syntax error: %(detail)s", detail=problem.detail),
            "unknown": _("unknown variable: %(names)s", names=problem.detail),
            "render": _("fails on sample data: %(detail)s", detail=problem.detail)}[problem.kind]
    return _("line %(line)s: %(text)s", line=problem.line, text=text) if problem.line else text


def _override(event: str, channel: str, locale: str) -> NotificationTemplate | None:
    return db.session.scalars(select(NotificationTemplate).filter_by(event=event, channel=channel,
                                                                     locale=locale)).first()


@bp.route("/notification-templates")
@staff_required("admin")
def notification_templates():
    """Every event's templates, per channel and language; the changed ones marked."""
    changed = {(t.event, t.channel, t.locale): t for t in db.session.scalars(select(NotificationTemplate))}
    return render_template("admin/notification_templates.html", events=NOTICE_EVENTS, channels=templates.CHANNELS,
                           locales=templates.LOCALES, changed=changed, event_titles=EVENT_TITLES,
                           channel_titles=CHANNEL_TITLES)


def _preview_for(event: str, channel: str, locale: str, draft: dict, contract_number: str):
    """(rendered or None, errors, what data was used) for the draft on a contract's data."""
    errors: dict = {}
    problems = templates.validate(event, channel, draft)
    for p in problems:
        errors.setdefault(p.field, problem_text(p))
    contract = None
    number = contract_number.strip()
    if number:
        contract = None if len(number) > 32 or "\x00" in number else \
            db.session.scalars(select(Contract).where(Contract.number == number)).first()
        if contract is None:
            errors["contract"] = _("not found")
    else:
        contract = db.session.scalars(select(Contract).order_by(Contract.id).limit(1)).first()
    if errors or contract is None:
        return None, errors, None, contract
    notice = db.session.scalars(select(Notice).where(Notice.contract_id == contract.id, Notice.event == event)
                                .order_by(Notice.id.desc()).limit(1)).first()
    data = {**templates.sample_context(event), **(notice.data if notice else {})}
    context = templates.context_for(contract.subscriber, contract, data, event=event)  # the real pay_url
    try:
        rendered = templates.render(event, channel, locale, context, template=draft)
    except Exception as exc:  # noqa: BLE001  (the notice's own data broke the draft: say so, never a 500)
        return None, {"body": _("fails on this contract's data: %(detail)s", detail=str(exc))}, notice, contract
    return rendered, {}, notice, contract


def _edit_page(event: str, channel: str, locale: str, draft: dict | None = None, errors: dict | None = None,
               preview=None, status: int = 200):
    override = _override(event, channel, locale)
    default = templates.DEFAULTS[(event, channel, locale)]
    if draft is None:
        draft = {"subject": override.subject, "body": override.body} if override else dict(default)
    return render_template(
        "admin/notification_template.html", event=event, channel=channel, locale=locale, draft=draft,
        errors=errors or {}, override=override, variables=templates.variables(event), preview=preview,
        contract_number=request.form.get("contract", ""), event_title=EVENT_TITLES[event],
        channel_title=CHANNEL_TITLES[channel], locale_title=LOCALE_TITLES[locale]), status


def _draft() -> dict:
    return {"subject": request.form.get("subject", ""), "body": request.form.get("body", "")}


@bp.route("/notification-templates/<event>/<channel>/<locale>")
@staff_required("admin")
def edit_notification_template(event: str, channel: str, locale: str):
    _known(event, channel, locale)
    return _edit_page(event, channel, locale)


@bp.route("/notification-templates/<event>/<channel>/<locale>/preview", methods=["POST"])
@staff_required("admin")
def preview_notification_template(event: str, channel: str, locale: str):
    """The draft rendered on a contract's data: a fragment for HTMX, else the page with it."""
    _known(event, channel, locale)
    rendered, errors, notice, contract = _preview_for(event, channel, locale, _draft(),
                                                      request.form.get("contract", ""))
    preview = {"rendered": rendered, "errors": errors, "notice": notice, "contract": contract}
    if is_htmx():
        return render_template("admin/_notification_preview.html", preview=preview, channel=channel)
    return _edit_page(event, channel, locale, _draft(), errors, preview, 422 if errors else 200)


@bp.route("/notification-templates/<event>/<channel>/<locale>", methods=["POST"])
@staff_required("admin")
def save_notification_template(event: str, channel: str, locale: str):
    _known(event, channel, locale)
    draft = _draft()
    errors: dict = {}
    for p in templates.validate(event, channel, draft):
        errors.setdefault(p.field, problem_text(p))
    contract = request.form.get("contract", "")
    if len(contract) > 32 or "\x00" in contract:  # (the preview's field: no contract number looks so)
        errors["contract"] = _("not found")
    if errors:
        return _edit_page(event, channel, locale, draft, errors, status=422)
    templates.save_override(event, channel, locale, draft, actor=actor())
    db.session.commit()
    flash(_("Template saved."), "ok")
    return redirect(url_for("admin.edit_notification_template", event=event, channel=channel, locale=locale),
                    code=303)


@bp.route("/notification-templates/<event>/<channel>/<locale>/reset", methods=["POST"])
@staff_required("admin")
def reset_notification_template(event: str, channel: str, locale: str):
    _known(event, channel, locale)
    templates.reset_override(event, channel, locale, actor=actor())
    db.session.commit()
    flash(_("Template reset to the default."), "ok")
    return redirect(url_for("admin.edit_notification_template", event=event, channel=channel, locale=locale),
                    code=303)


# -- bulk messages --------------------------------------------------------------------------------

def _filter_options() -> dict:
    return {"agents": [(str(a.id), a.name) for a in db.session.scalars(select(Agent).order_by(Agent.name))],
            "tariffs": [(str(t.id), t.name) for t in db.session.scalars(select(Tariff).order_by(Tariff.name))],
            "statuses": [(s, state_title(s)) for s in ACCOUNT_STATUSES]}


def _bulk_form(errors: dict | None = None, preview=None, status: int = 200):
    values = request.form if request.method == "POST" else request.args
    return render_template("admin/bulk_message_new.html", values=values, errors=errors or {}, preview=preview,
                           request_key=values.get("request_key") or secrets.token_hex(16),
                           **_filter_options()), status


def _bulk_input():
    filters = bulk.parse_filters({f: request.form.get(f, "") for f in bulk.FILTERS})
    return filters, request.form.get("subject", "").strip(), request.form.get("text", "").strip()


def _bulk_errors(e: BillingError) -> dict:
    """Billing's field messages; a template problem of the text or subject in the reader's words."""
    errors = error_fields(e)
    for field in ("text", "subject"):
        problems = [] if field not in errors else templates.validate_bulk_text(request.form.get(field, "").strip(),
                                                                               field)
        if problems:
            errors[field] = problem_text(problems[0])
    return errors


@bp.route("/bulk-messages")
@staff_required()
def bulk_messages():
    """The bulk messages sent: who, when, what, to which filter, how many."""
    sent = db.session.scalars(select(BulkMessage).order_by(BulkMessage.id.desc()).limit(BULK_SHOWN)).all()
    options = _filter_options()
    names = {k: dict(v) for k, v in options.items()}
    return render_template("admin/bulk_messages.html", sent=sent, names=names)


@bp.route("/bulk-messages/new")
@staff_required(*WRITERS)
def new_bulk_message():
    return _bulk_form()


@bp.route("/bulk-messages/preview", methods=["POST"])
@staff_required(*WRITERS)
def preview_bulk_message():
    """How many subscribers the filter selects, and the message the first of them would get."""
    try:
        filters, subject, text = _bulk_input()
        result = bulk.preview(filters, subject, text)
    except BillingError as e:
        errors = _bulk_errors(e)
        if is_htmx():
            return render_template("admin/_bulk_preview.html", preview=None, errors=errors), 200
        return _bulk_form(errors, status=422)
    if is_htmx():
        return render_template("admin/_bulk_preview.html", preview=result, errors={})
    return _bulk_form(preview=result)


@bp.route("/bulk-messages", methods=["POST"])
@staff_required(*WRITERS)
def send_bulk_message():
    try:
        filters, subject, text = _bulk_input()
        message, created = bulk.send(filters, subject, text, actor=actor(),
                                     request_key=request.form.get("request_key", "").strip())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return _bulk_form(_bulk_errors(e), status=422)
    if created:
        flash(_("Message sent to %(n)s subscribers.", n=message.recipients), "ok")
    else:
        flash(_("This message was sent already (to %(n)s subscribers): nothing sent again.", n=message.recipients),
              "ok")
    return redirect(url_for("admin.bulk_messages"), code=303)
