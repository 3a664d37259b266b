"""The subscriber card, the contract page and the account page, with their actions.

Actions are forms that post in place (HTMX swaps the page's <main>; without JavaScript they
are plain forms). Success redirects back to the page with a message; a billing error re-renders
the page with each message beside its field (422) and nothing saved: the transaction is rolled
back before the page is drawn.
"""
from __future__ import annotations

import secrets
from datetime import date

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from ..billing import accounts as billing
from ..billing import directory, ledger, quotes
from ..billing.blocking import top_up_to_unblock
from ..billing.charging import apply_balance_rule
from ..billing.errors import BillingError
from ..extensions import db
from ..models import (
    Account,
    Agent,
    AssignedService,
    AuditEntry,
    CatalogService,
    Contract,
    ExtraFieldDefinition,
    OutboxEvent,
    Subscriber,
    Tariff,
)
from ..models.ledger import PAYMENT_CASH
from ..platforms import reconcile
from ..web import error_fields, form_ids, form_int, form_text, int_arg, is_htmx, local_time, money, with_toast
from . import bp
from .auth import WRITERS, actor, staff_required

LEDGER_PAGE = 50


def get_or_404(model, ident: int):
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj


def attempt(action, success, back: str, render_error):
    """Run a billing action in this request's transaction: commit and go back with a message
    (``success``: the text, or a function of what the action returned), or roll back and
    re-render the page with the errors beside their fields."""
    try:
        result = action()
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return render_error(error_fields(e)), 422
    flash(success(result) if callable(success) else success, "ok")
    return redirect(back() if callable(back) else back, code=303)


def form_date(name: str):
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return raw  # billing names the field: "a date"


TRUE_WORDS = ("1", "on", "true", "yes", "y")
FALSE_WORDS = ("", "0", "off", "false", "no")


def form_bool(name: str) -> bool:
    """A checkbox or yes/no field: absent (an unticked checkbox) or one of FALSE_WORDS is False,
    one of TRUE_WORDS True (any case). Anything else is refused with an error on the field
    (a BillingError, as billing names a bad value), never read as False: a caller parses it
    inside its ``attempt`` so that the page shows the error beside the field."""
    raw = request.form.get(name)
    word = (raw or "").strip().lower()
    if raw is None or word in FALSE_WORDS:
        return False
    if word in TRUE_WORDS:
        return True
    raise BillingError({name: "true or false"})


# -- subscriber card ----------------------------------------------------------------------------

SUBSCRIBER_FORM = ("kind", "full_name", "email", "postal_address", "notes", "cabinet_login", "inn", "bank_account")


def subscriber_data() -> dict:
    data = {f: form_text(f) for f in SUBSCRIBER_FORM}
    data["kind"] = data["kind"] or "person"
    if "language" in request.form:  # (forms without it keep the card's language)
        data["language"] = request.form["language"]
    data["phones"] = [p.strip() for p in request.form.get("phones", "").split(",") if p.strip()]
    if request.form.get("cabinet_password"):
        data["cabinet_password"] = request.form["cabinet_password"]
    return data


def choices() -> dict:
    """Options the account forms offer."""
    return {
        "agents": db.session.scalars(select(Agent).order_by(Agent.name)).all(),
        "tariffs": db.session.scalars(select(Tariff).where(Tariff.is_multi.is_(False)).order_by(Tariff.name)).all(),
        "multi_tariffs": db.session.scalars(select(Tariff).where(Tariff.is_multi.is_(True))
                                            .order_by(Tariff.name)).all(),
        "extra_fields": db.session.scalars(select(ExtraFieldDefinition).order_by(ExtraFieldDefinition.id)).all(),
    }


def render_subscriber(subscriber: Subscriber, errors: dict | None = None, form: str | None = None):
    return render_template("admin/subscriber.html", s=subscriber, errors=errors or {}, open_form=form,
                           values=request.form if errors else {}, nonce=secrets.token_hex(8), **choices())


@bp.route("/subscribers/new", methods=["GET", "POST"])
@staff_required(*WRITERS)
def new_subscriber():
    """A new subscriber card; then the card itself, to add a contract and an account."""
    errors = {}
    if request.method == "POST":
        try:
            s = directory.save_subscriber(subscriber_data(), actor=actor())
            directory.save_contract({"subscriber_id": s.id}, actor=actor())
            db.session.commit()
        except BillingError as e:
            db.session.rollback()
            errors = error_fields(e)
        else:
            flash(_("Subscriber created with a contract."), "ok")
            return redirect(url_for("admin.subscriber", subscriber_id=s.id), code=303)
    return render_template("admin/subscriber_new.html", errors=errors, values=request.form), 422 if errors else 200


@bp.route("/subscribers/<int:subscriber_id>")
@staff_required()
def subscriber(subscriber_id: int):
    """The card: details, contracts with balances, accounts with their status."""
    return render_subscriber(get_or_404(Subscriber, subscriber_id))


@bp.route("/subscribers/<int:subscriber_id>", methods=["POST"])
@staff_required(*WRITERS)
def update_subscriber(subscriber_id: int):
    s = get_or_404(Subscriber, subscriber_id)
    return attempt(lambda: directory.save_subscriber(subscriber_data(), actor=actor(), subscriber=s),
                   _("Details saved."), url_for("admin.subscriber", subscriber_id=s.id),
                   lambda errors: render_subscriber(s, errors, "details"))


@bp.route("/subscribers/<int:subscriber_id>/contracts", methods=["POST"])
@staff_required(*WRITERS)
def new_contract(subscriber_id: int):
    s = get_or_404(Subscriber, subscriber_id)

    def create():
        data = {"subscriber_id": s.id, "number": form_text("number"), "credit_limit": form_text("credit_limit"),
                "do_not_block": form_bool("do_not_block")}
        return directory.save_contract(data, actor=actor())

    return attempt(create, _("Contract created."),
                   url_for("admin.subscriber", subscriber_id=s.id),
                   lambda errors: render_subscriber(s, errors, "contract"))


def account_form_data(creating: bool) -> dict:
    data = {"house": form_text("house"), "flat": form_text("flat"), "tariff_id": form_int("tariff_id"),
            "multi_tariff_ids": form_ids("multi_tariff_ids"),
            "extra": {d.name: request.form.get(f"extra.{d.name}", "").strip()
                      for d in db.session.scalars(select(ExtraFieldDefinition))}}
    if creating:
        data.update(login=form_text("login"), agent_id=form_int("agent_id"), contract_id=form_int("contract_id"))
        data["extra"] = {k: v for k, v in data["extra"].items() if v}
    if request.form.get("password"):
        data["password"] = request.form["password"]
    return data


@bp.route("/subscribers/<int:subscriber_id>/accounts", methods=["POST"])
@staff_required(*WRITERS)
def new_account(subscriber_id: int):
    s = get_or_404(Subscriber, subscriber_id)
    data = account_form_data(creating=True)
    if data["contract_id"] not in [c.id for c in s.contracts]:
        data["contract_id"] = None  # only this subscriber's contracts; billing says "no such contract"
    created = {}

    def create():
        created["account"] = billing.create_account(data, actor=actor())

    return attempt(create, _("Account created."), lambda: url_for("admin.account", account_id=created["account"].id),
                   lambda errors: render_subscriber(s, errors, "account"))


# -- contract page ------------------------------------------------------------------------------

def render_contract(contract: Contract, errors: dict | None = None, form: str | None = None):
    page = ledger.ledger_page(contract, int_arg("before"), limit=LEDGER_PAGE)
    if is_htmx() and request.method == "GET" and request.args.get("before"):
        return render_template("admin/_ledger_rows.html", page=page, c=contract)
    return render_template("admin/contract.html", c=contract, page=page, errors=errors or {}, open_form=form,
                           values=request.form if errors else {}, nonce=secrets.token_hex(8))


@bp.route("/contracts/<int:contract_id>")
@staff_required()
def contract(contract_id: int):
    """The contract: balance, ledger with the running balance, payment and correction forms."""
    return render_contract(get_or_404(Contract, contract_id))


def _back():
    """Where a form came from (the card or the contract page), never off-site."""
    target = request.form.get("back", "")
    return target if target.startswith("/") and not target.startswith("//") else None


@bp.route("/contracts/<int:contract_id>/payments", methods=["POST"])
@staff_required(*WRITERS)
def take_payment(contract_id: int):
    """A payment taken by staff. The form's one-time key makes a double submit harmless."""
    c = get_or_404(Contract, contract_id)
    external = form_text("external_id")
    key = f"payment:{external}" if external else f"form:{request.form.get('nonce', '')}"
    amount = form_text("amount")

    def pay():
        if not amount:
            raise BillingError({"amount": "required"})
        return ledger.post(c.id, "payment", amount, actor=actor(), comment=form_text("comment"),
                           idempotency_key=key, source=PAYMENT_CASH, cashier_id=current_user.id)

    def said(result) -> str:
        entry, created = result
        if created:  # the amount as billing read it ("1 000,50" -> 1,000.50)
            flash(url_for("admin.payment_receipt", entry_id=entry.id), "receipt")  # (base.html: a link)
            return _("Payment of %(amount)s taken.", amount=money(entry.amount))
        return _("This payment was taken already on %(when)s (%(amount)s): nothing was posted again.",
                 when=local_time(entry.created_at), amount=money(entry.amount))

    back = _back() or url_for("admin.contract", contract_id=c.id)
    return attempt(pay, said, back, lambda errors: render_form_error(c, errors, "payment"))


@bp.route("/contracts/<int:contract_id>/corrections", methods=["POST"])
@staff_required(*WRITERS)
def post_correction(contract_id: int):
    """A correction (either sign) with a required reason."""
    c = get_or_404(Contract, contract_id)
    amount, comment = form_text("amount"), form_text("comment")

    def correct():
        errors = {}
        if not amount:
            errors["amount"] = "required"
        if not comment:
            errors["comment"] = "required"
        if errors:
            raise BillingError(errors)
        ledger.post(c.id, "correction", amount, actor=actor(), comment=comment,
                    idempotency_key=f"form:{request.form.get('nonce', '')}")

    back = _back() or url_for("admin.contract", contract_id=c.id)
    return attempt(correct, _("Correction posted."), back, lambda errors: render_form_error(c, errors, "correction"))


def render_form_error(c: Contract, errors: dict, form: str):
    """Errors are shown on the page the form was on."""
    if (_back() or "").startswith("/subscribers/"):
        return render_subscriber(c.subscriber, {f"{form}.{c.id}.{k}": v for k, v in errors.items()}, f"{form}.{c.id}")
    return render_contract(c, errors, form)


@bp.route("/contracts/<int:contract_id>/settings", methods=["POST"])
@staff_required(*WRITERS)
def update_contract(contract_id: int):
    c = get_or_404(Contract, contract_id)

    def save():
        data = {"credit_limit": form_text("credit_limit") or "0", "do_not_block": form_bool("do_not_block")}
        directory.save_contract(data, actor=actor(), contract=c)
        apply_balance_rule([c.id], actor=actor())  # a new limit may block or unblock at once

    return attempt(save, _("Contract settings saved."), url_for("admin.contract", contract_id=c.id),
                   lambda errors: render_contract(c, errors, "settings"))


# -- account page -------------------------------------------------------------------------------

def render_account(account: Account, errors: dict | None = None, form: str | None = None):
    offered = billing.offered_service_ids(account)
    fee_ids = billing.fee_service_ids(account)
    held = {s.service_id for s in account.services if s.state != "ended" and not s.per_order}
    assignable = db.session.scalars(
        select(CatalogService).where(CatalogService.id.in_(offered - fee_ids - held)).order_by(CatalogService.name)
    ).all() if offered else []
    # what each choice costs today and what ending each service gives back (billing's quote)
    charges = {sv.id: quotes.quote(account, add=sv).charge for sv in assignable}
    refunds = {s.id: quotes.end_refund(s) for s in account.services if s.state != "ended"}
    history = db.session.scalars(
        select(AuditEntry).where(AuditEntry.object_type == "account", AuditEntry.object_id == account.id)
        .order_by(AuditEntry.id.desc()).limit(30)
    ).all()
    return render_template("admin/account.html", a=account, errors=errors or {}, open_form=form,
                           top_up=top_up_to_unblock(account.contract),
                           values=request.form if errors else {}, assignable=assignable, history=history,
                           charges=charges, refunds=refunds,
                           **sync_context(account), **choices())


@bp.route("/accounts/<int:account_id>")
@staff_required()
def account(account_id: int):
    """The account: tariffs, extra fields, services, status actions, platform sync, history."""
    return render_account(get_or_404(Account, account_id))


@bp.route("/accounts/<int:account_id>/sync-panel")
@staff_required()
def account_sync_panel(account_id: int):
    """The sync panel alone: it polls itself while a platform is still pending."""
    a = get_or_404(Account, account_id)
    return render_template("admin/_account_sync.html", a=a, **sync_context(a))


@bp.route("/accounts/<int:account_id>", methods=["POST"])
@staff_required(*WRITERS)
def update_account(account_id: int):
    a = get_or_404(Account, account_id)
    return attempt(lambda: billing.update_account(a, account_form_data(creating=False), actor=actor()),
                   _("Account saved."), url_for("admin.account", account_id=a.id),
                   lambda errors: render_account(a, errors, "edit"))


STATUS_ACTIONS = {
    "activate": (lambda a, who: billing.activate(a, actor=who), _l("Account activated.")),
    "block": (lambda a, who: billing.block(a, "manager", actor=who), _l("Account blocked.")),
    "unblock": (lambda a, who: billing.unblock(a, "manager", actor=who), _l("Account unblocked.")),
    "disable": (lambda a, who: billing.disable(a, actor=who), _l("Account disabled.")),
}


@bp.route("/accounts/<int:account_id>/<any(activate, block, unblock, disable):action>", methods=["POST"])
@staff_required(*WRITERS)
def account_status(account_id: int, action: str):
    """Activate, block (by a manager), unblock (the manager's block), disable."""
    a = get_or_404(Account, account_id)
    change, message = STATUS_ACTIONS[action]
    return attempt(lambda: change(a, actor()), str(message), url_for("admin.account", account_id=a.id),
                   lambda errors: render_account(a, errors, "status"))


@bp.route("/accounts/<int:account_id>/services", methods=["POST"])
@staff_required(*WRITERS)
def assign_service(account_id: int):
    a = get_or_404(Account, account_id)
    data = {"service_id": form_int("service_id"), "starts_on": form_date("starts_on"),
            "ends_on": form_date("ends_on")}
    return attempt(lambda: billing.assign_service(a, data, actor=actor()), _("Service assigned."),
                   url_for("admin.account", account_id=a.id), lambda errors: render_account(a, errors, "assign"))


@bp.route("/assigned-services/<int:assigned_id>/<any(end, expiry, suspend, resume):action>", methods=["POST"])
@staff_required(*WRITERS)
def change_service(assigned_id: int, action: str):
    """End now, set the last day, suspend or resume one assigned service."""
    s = get_or_404(AssignedService, assigned_id)
    who = actor()
    change = {
        "end": lambda: billing.end_service(s, actor=who),
        "expiry": lambda: billing.set_service_expiry(s, form_date("ends_on"), actor=who),
        "suspend": lambda: billing.set_service_state(s, "suspended", actor=who),
        "resume": lambda: billing.set_service_state(s, "active", actor=who),
    }[action]

    return attempt(change, _("Service changed."), url_for("admin.account", account_id=s.account_id),
                   lambda errors: render_account(s.account, {f"service.{s.id}.{k}": v for k, v in errors.items()},
                                                 f"service.{s.id}"))


@bp.route("/accounts/<int:account_id>/sync", methods=["POST"])
@staff_required(*WRITERS)
def sync_account(account_id: int):
    """"Sync now" on every platform the account is on; the panel then polls until done."""
    a = get_or_404(Account, account_id)
    reconcile.request_sync(a.id, actor())
    db.session.commit()
    return with_toast(render_template("admin/_account_sync.html", a=a, **sync_context(a)),
                      _("Sync requested."))


def sync_context(account: Account) -> dict:
    """The account's sync states, and whether a job for it is still to run (the panel polls)."""
    waiting = db.session.scalar(select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.account_id == account.id, OutboxEvent.processed_at.is_(None)))
    sync = reconcile.sync_states(account.id)
    return {"sync": sync, "busy": bool(waiting) or any(s["state"] == "pending" for s in sync)}
