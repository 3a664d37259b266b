"""BILLmanager reselling in the admin: service handlers, data centers and departments, the
tariff import wizard, imported tariffs and resold services.

URL map (any staff member reads; admins change handlers, lists and tariffs; admins and
managers act on services):

    GET  /billmanager/handlers                       handlers with their balances
    GET  /billmanager/handlers/new, /<id>            the form (password write-only)
    POST /billmanager/handlers/new, /<id>            save ("Next"): then the check job runs
    POST /billmanager/handlers/<id>/check            check the connection, read the balance (job)
    GET  /billmanager/lists                          data centers and departments
    POST /billmanager/lists/<kind>[/<id>[/delete]]   add, rename, delete
    GET  /billmanager/import[?handler=&itemtype=]    the wizard: handler -> price list -> tariff
    POST /billmanager/import/<handler>/fetch         read pricelist.export (job)
    POST /billmanager/import/<handler>/<remote_id>   import one tariff (disabled)
    GET  /billmanager/tariffs, /tariffs/<id>         imported tariffs; rename, reprice, enable
    POST /billmanager/tariffs/<id>, /<id>/sync       save; re-sync from the seller (job)
    GET  /billmanager/services                       resold services, their state on both sides
    POST /billmanager/services/order                 order on a subscriber's behalf
    POST /billmanager/services/renew                 renew on the seller now (the 00:35 job; job)
    POST /billmanager/services/<id>/<action>         restart, not-ordered, suspend, resume, delete

The web process never calls the seller: anything that does is a job with a progress row.
The staff actions themselves (without Flask) are in portal/platforms/billmanager/console.py.
"""
from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from ..billing.errors import BillingError
from ..extensions import db
from ..models import BmHandler, BmService, BmTariff
from ..platforms.billmanager import console, importer, orders
from ..platforms.billmanager import handlers as bm_handlers
from ..web import error_fields, form_int, form_text
from . import bp
from .auth import WRITERS, actor, staff_required
from .jobs import job_view, progress_row, start_job

ADMIN = ("admin",)
STATE_TITLES = {"pending": _l("waiting to be ordered"), "ordering": _l("ordering"), "ordered": _l("ordered"),
                "attention": _l("needs a check"), "deleted": _l("deleted")}
WAIT_TITLES = {"account": _l("waits for the account to be active"),
               "unreachable": _l("the seller does not answer: retried automatically"),
               "balance_unknown": _l("the seller's balance cannot be read: retried automatically"),
               "balance_low": _l("the selling account's balance is too low: retried automatically"),
               "refused": _l("refused by the seller: restart it after fixing the cause")}
REMOTE_TITLES = {1: _l("ordered"), 2: _l("active"), 3: _l("suspended"), 4: _l("deleted"), 5: _l("in progress")}
# Messages from portal.platforms.billmanager, listed so that pybabel puts them in the catalog.
MESSAGES = [
    _l("1-100 characters"),
    _l("1-200 characters"),
    _l("in use by a handler"),
    _l("not in the price list read from the seller"),
    _l("another product type than the handler's"),
    _l("the seller has no one-month period for this tariff"),
    _l("choose one of the tariff's providers"),
    _l("already imported"),
    _l("the seller no longer offers this tariff"),
    _l("the account must be active"),
    _l("a domain name such as example.ru"),
    _l("not enough money on the contract: top it up first"),
    _l("no such account"),
    _l("must be positive"),
    _l("check the seller first, then confirm the order is not there"),
    _l("only a pending or flagged order can be restarted"),
    _l("already used for another order"),
    _l("a list of handler ids"),
    _l("at least one handler"),
    _l("a handler may appear once"),
    _l("only handlers of this product type on this tariff's seller"),
    _l("priorities are whole numbers"),
]
JOB_TIMEOUT = 300
PAGE = 200  # services shown at once (newest first); narrow with the state filter or the search


def _get(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj


def _render(template: str, status: int = 200, **context):
    return render_template(template, nav_section="admin.bm_handlers", state_titles=STATE_TITLES,
                           remote_titles=REMOTE_TITLES, wait_titles=WAIT_TITLES, **context), status


def _enqueue(func: str, *args) -> str | None:
    return start_job(func, *args, timeout=JOB_TIMEOUT)


# -- handlers ------------------------------------------------------------------------------

@bp.route("/billmanager/handlers", endpoint="bm_handlers")
@staff_required()
def handlers_page():
    return _render("admin/billmanager/handlers.html", items=console.handler_list())


def _handler_form(handler) -> dict:
    return {"name": form_text("name"), "itemtype": form_text("itemtype"), "url": form_text("url"),
            "username": form_text("username"), "password": request.form.get("password") or None,
            "datacenter_id": form_int("datacenter_id"), "department_id": form_int("department_id"),
            "sort": form_text("sort"), "min_balance": form_text("min_balance"),
            # the checkbox is on the form of an existing handler only: a new one starts enabled
            "enabled": request.form.get("enabled") == "1" if handler is not None else None}


def _handler_page(handler, values=None, errors=None, job_id=None, status=200):
    v = values or (bm_handlers.public(handler) if handler else {"sort": 0, "min_balance": "0.00", "enabled": True})
    datacenters, departments = console.named_lists()
    return _render("admin/billmanager/handler.html", status, h=handler, v=v, errors=errors or {},
                   check=_check_row(handler.id, job_id) if handler and job_id else None,
                   datacenters=datacenters, departments=departments,
                   demo=console.demo_seller() if handler is None else None,
                   tariffs=bm_handlers.tariffs_of(handler) if handler else [])


@bp.route("/billmanager/handlers/new", methods=["GET", "POST"])
@bp.route("/billmanager/handlers/<int:handler_id>", methods=["GET", "POST"])
@staff_required()
def bm_handler(handler_id: int | None = None):
    """The handler form; "Next" saves it and checks the connection in a job."""
    handler = _get(BmHandler, handler_id) if handler_id else None
    if request.method == "GET":
        return _handler_page(handler)
    if current_user.role != "admin":
        abort(403)
    data = _handler_form(handler)
    try:
        handler = bm_handlers.save_handler(data, actor=actor(), handler=handler)
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return _handler_page(handler, values={**data, "password": None}, errors=error_fields(e), status=422)
    job_id = _enqueue("jobs.billmanager.check_handler", handler.id, actor())
    flash(_("Handler saved. Checking the connection…"), "ok")
    return _handler_page(handler, job_id=job_id)


@bp.route("/billmanager/handlers/<int:handler_id>/check", methods=["POST"])
@staff_required(*ADMIN)
def bm_check_handler(handler_id: int):
    """Check the connection and the credentials; the row shows the selling account's balance."""
    _get(BmHandler, handler_id)
    return _check_row(handler_id, _enqueue("jobs.billmanager.check_handler", handler_id, actor()))


@bp.route("/billmanager/handlers/<int:handler_id>/check/<job_id>")
@staff_required()
def bm_check_progress(handler_id: int, job_id: str):
    """How far is this connection check? (Polled by its row until the job has finished.)"""
    return _check_row(handler_id, job_id)


def _check_row(handler_id: int, job_id: str | None) -> Markup:
    """The check's progress row; done, it shows the balance the job read, in the seller's
    currency as the page's language writes it."""
    return Markup(render_template("admin/billmanager/_check.html", handler_id=handler_id, job_id=job_id,
                                  label=_("Connection check"), **job_view(job_id)))


# -- data centers and departments -------------------------------------------------------------

def _lists_page(errors=None, status=200, which=None):
    datacenters, departments = console.named_lists()
    return _render("admin/billmanager/lists.html", status, errors=errors or {}, which=which,
                   datacenters=datacenters, departments=departments)


@bp.route("/billmanager/lists")
@staff_required()
def bm_lists():
    return _lists_page()


@bp.route("/billmanager/lists/<kind>", methods=["POST"])
@bp.route("/billmanager/lists/<kind>/<int:ident>", methods=["POST"])
@bp.route("/billmanager/lists/<kind>/<int:ident>/<op>", methods=["POST"])
@staff_required(*ADMIN)
def bm_list_save(kind: str, ident: int | None = None, op: str | None = None):
    model = console.LISTS.get(kind) or abort(404)
    obj = _get(model, ident) if ident else None
    try:
        console.save_list_item(kind, request.form.get("name", ""), actor=actor(), obj=obj, delete=op == "delete")
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return _lists_page({f"{kind}-{ident or 'new'}": error_fields(e).get("name")}, 422, kind)
    flash(_("Saved."), "ok")
    return redirect(url_for("admin.bm_lists"), 303)


# -- the import wizard -----------------------------------------------------------------------

@bp.route("/billmanager/import")
@staff_required()
def bm_import():
    """Step 1: a handler; step 2 (its price list read): product type, tariff, provider."""
    handlers = db.session.scalars(select(BmHandler).order_by(BmHandler.name)).all()
    handler = db.session.get(BmHandler, request.args.get("handler", type=int) or 0)
    return _render("admin/billmanager/import.html", handlers=handlers, handler=handler, errors={},
                   **console.wizard(handler, request.args.get("itemtype")))


def _priorities() -> list[int] | None:
    """The handlers that sell a tariff, from the form's ``prio_<handler id>`` inputs."""
    return console.priorities(request.form)


@bp.route("/billmanager/import/<int:handler_id>/fetch", methods=["POST"])
@staff_required(*ADMIN)
def bm_import_fetch(handler_id: int):
    _get(BmHandler, handler_id)
    return progress_row(_enqueue("jobs.billmanager.fetch_pricelist", handler_id, actor()),
                        _("Reading the price list"), done=_("Tariffs read: %(result)s"))


@bp.route("/billmanager/import/<int:handler_id>/<remote_id>", methods=["POST"])
@staff_required(*ADMIN)
def bm_import_tariff(handler_id: int, remote_id: str):
    handler = _get(BmHandler, handler_id)
    try:
        tariff = importer.import_tariff(handler, remote_id, form_text("datacenter"), actor=actor(),
                                        handler_ids=_priorities())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        flash("; ".join(error_fields(e).values()), "error")
        return redirect(url_for("admin.bm_import", handler=handler_id), 303)
    flash(_("Tariff imported, disabled: check the name and the price, then enable it."), "ok")
    return redirect(url_for("admin.bm_tariff", tariff_id=tariff.id), 303)


# -- imported tariffs ---------------------------------------------------------------------------

@bp.route("/billmanager/tariffs")
@staff_required()
def bm_tariffs():
    return _render("admin/billmanager/tariffs.html", items=console.tariff_list())


def _tariff_page(t, values=None, errors=None, job_id=None, status=200):
    v = values or {"name": t.name, "price": t.price, "enabled": t.enabled}
    if "prio" not in v:
        v["prio"] = {h.id: n for n, h in enumerate(bm_handlers.tariff_handlers(t), start=1)}
    return _render("admin/billmanager/tariff.html", status, t=t, v=v, errors=errors or {}, job_id=job_id,
                   sellers=bm_handlers.eligible_handlers(t))


@bp.route("/billmanager/tariffs/<int:tariff_id>", methods=["GET", "POST"])
@staff_required()
def bm_tariff(tariff_id: int):
    t = _get(BmTariff, tariff_id)
    if request.method == "GET":
        return _tariff_page(t)
    if current_user.role != "admin":
        abort(403)
    data = {"name": form_text("name"), "price": form_text("price"), "enabled": request.form.get("enabled") == "1"}
    try:
        data["prio"] = {int(k[5:]): v for k, v in request.form.items() if k.startswith("prio_") and k[5:].isdigit()}
        data["handler_ids"] = _priorities()
        importer.update_tariff(t, data, actor=actor())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return _tariff_page(_get(BmTariff, tariff_id), values=data, errors=error_fields(e), status=422)
    flash(_("Tariff saved."), "ok")
    return redirect(url_for("admin.bm_tariff", tariff_id=tariff_id), 303)


@bp.route("/billmanager/tariffs/<int:tariff_id>/sync", methods=["POST"])
@staff_required(*ADMIN)
def bm_tariff_sync(tariff_id: int):
    _get(BmTariff, tariff_id)
    return progress_row(_enqueue("jobs.billmanager.resync_tariff", tariff_id, actor()), _("Re-sync from the seller"),
                        done=_("Changes: %(result)s"))


# -- resold services ----------------------------------------------------------------------------

def _services_page(errors=None, values=None, status=200):
    state, q = request.args.get("state") or "", (request.args.get("q") or "").strip()
    return _render("admin/billmanager/services.html", status, errors=errors or {}, v=values or {},
                   desired=orders.desired, state=state, q=q, nonce=(values or {}).get("nonce") or secrets.token_hex(16),
                   **console.services(state, q, PAGE))


@bp.route("/billmanager/services")
@staff_required()
def bm_services():
    return _services_page()


@bp.route("/billmanager/services/order", methods=["POST"])
@staff_required(*WRITERS)
def bm_order():
    """Order on a subscriber's behalf: the account (login) pays, as in the cabinet."""
    try:
        svc = console.order_for(form_text("login") or "", form_int("tariff_id"), domain=form_text("domain"),
                                actor=actor(), nonce=request.form.get("nonce"))
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return _services_page(error_fields(e), request.form, 422)
    orders.enqueue_order(svc.id)
    flash(_("Order placed: the service is being ordered on the seller."), "ok")
    return redirect(url_for("admin.bm_services"), 303)


@bp.route("/billmanager/services/renew", methods=["POST"])
@staff_required(*WRITERS)
def bm_renew():
    """Run the renewal now (the 00:35 job), for the month of the given day (default today)."""
    from datetime import date

    day = (request.form.get("date") or "").strip() or None
    if day:
        try:
            date.fromisoformat(day)
        except ValueError:
            return Markup('<p class="error" data-field="date">%s</p>') % _("a date such as 2026-12-01"), 422
    return progress_row(_enqueue("jobs.billmanager.renew_due", day), _("Renewal on the seller"),
                        done=_("Renewal: %(result)s"))


@bp.route("/billmanager/services/<int:svc_id>/<action>", methods=["POST"])
@staff_required(*WRITERS)
def bm_service_action(svc_id: int, action: str):
    svc = _get(BmService, svc_id)
    if action not in console.SERVICE_ACTIONS:
        abort(404)
    try:
        order_again = console.service_action(svc, action, actor=actor())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        flash("; ".join(error_fields(e).values()), "error")
        return redirect(url_for("admin.bm_services"), 303)
    if order_again:
        orders.enqueue_order(svc_id)
    flash({"restart": _("Order restarted."), "not-ordered": _("Order restarted."),
           "suspend": _("Suspended: the seller follows."), "resume": _("Resumed: the seller follows."),
           "delete": _("Deleted: the seller follows.")}[action], "ok")
    return redirect(url_for("admin.bm_services"), 303)
