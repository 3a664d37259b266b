"""Stalker's staff pages: the console (admin → Platforms → Stalker, after the seed document 002)
and the account page's Stalker panel.

Five tables read from the snapshot a worker job refreshes (the web process never calls
Stalker); a "Console" tab for raw requests (admins) and a connection check::

    GET  /stalker[/<tab>]                          a table (HTMX: its rows), tabs: accounts, stb,
                                                   channels, subscriptions, tariffs, console
    POST /stalker/refresh/<tab|all>                refresh from Stalker (job, progress row)
    GET  /stalker/accounts/<row>/add               "+": how billing starts for it (a dialog)
    POST /stalker/accounts/<row>/add               "+": the Stalker account into billing
    POST /stalker/accounts/<row>/delete            delete it from Stalker (job)
    POST /stalker/stb/register                     an STB registered on a billing account
    GET  /stalker/stb/billing                      the STBs registered in billing (HTMX rows)
    POST /stalker/stb/<id>/remove                  one removed from billing (after a confirmation)
    POST /stalker/channels/import                  billing's channel list := Stalker's (job)
    POST /stalker/tariffs/<row>/import             the plan as a billing tariff (id = external_id)
    POST /stalker/check                            reachable? credentials? API on? (job)
    POST /stalker/console                          a raw request (admins; job)
    GET  /stalker/console/<job_id>                 its answer, pretty-printed (polled)

The account page's panel: the Stalker user the account is bound to, and what staff do about a
conflict (issue 13). Reading: any staff; acting: admin or manager::

    GET  /accounts/<id>/stalker                    the panel alone (templates/admin/stalker/_binding.html)
    POST /accounts/<id>/stalker/link               the conflicting Stalker user is this subscriber: bind it
    POST /accounts/<id>/stalker/login              create the account's Stalker user with another login

Both actions bind or rename in billing and ask for a sync: the worker writes billing's data
onto the user (the web request never calls Stalker).
"""
from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import select

from ..billing import outbox
from ..billing.errors import BillingError
from ..billing.import_start import START_OPTIONS
from ..extensions import db
from ..listing import paginate
from ..models import Account, StalkerChannel, StalkerSnapshotRow, SyncState
from ..platforms import reconcile
from ..platforms.stalker import binding, catalog, console
from ..web import error_fields, int_arg, is_htmx, money, platform_moment, with_toast
from . import bp
from .auth import WRITERS, actor, staff_required
from .jobs import job_view, progress_row, start_job

PAGE_SIZE = 50
TABS = {
    "accounts": _l("Accounts"), "stb": _l("STB"), "channels": _l("Channels"),
    "subscriptions": _l("Subscriptions"), "tariffs": _l("Tariff plans"), "console": _l("Console"),
}
# fixed columns of the tables whose shape Stalker fixes (accounts show whatever Stalker sends)
COLUMNS = {
    "stb": ["mac", "ls", "login", "status", "online", "additional_services_on", "ip", "version", "account_balance",
            "end_date", "last_active"],
    "channels": ["id", "number", "name", "hd", "base_ch", "enable_monitoring", "url"],
    "subscriptions": ["ls", "mac", "sub_ch", "additional_services_on"],
    "tariffs": ["id", "external_id", "name", "user_default", "days_to_expires", "packages"],
}
# column headers: Stalker's field names in words (the field name stays in the header's title)
HEADERS = {
    "login": _l("Login"), "full_name": _l("Full name"), "phone": _l("Phone"),
    "account_number": _l("Account number"), "ls": _l("Account number"), "tariff_plan": _l("Tariff plan"),
    "status": _l("Status"), "online": _l("Online"), "stb_mac": _l("STB MAC"), "mac": _l("STB MAC"),
    "stb_sn": _l("STB serial number"), "stb_type": _l("STB model"), "ip": _l("IP address"),
    "version": _l("Software version"), "comment": _l("Comment"), "end_date": _l("End date"),
    "account_balance": _l("Balance"), "last_active": _l("Last active"), "subscribed": _l("Optional packages"),
    "subscribed_id": _l("Optional package ids"), "additional_services_on": _l("Additional services"),
    "tariff_expired_date": _l("Plan expires"), "tariff_instead_expired": _l("Plan after expiry"),
    "reseller_id": _l("Reseller"), "reseller_name": _l("Reseller name"),
    "id": _l("ID"), "number": _l("Number"), "name": _l("Title"), "hd": "HD", "base_ch": _l("Basic channel"),
    "enable_monitoring": _l("Monitoring"), "url": _l("Stream URL"), "sub_ch": _l("Channels"),
    "external_id": _l("External ID"), "user_default": _l("Default plan"), "days_to_expires": _l("Days to expire"),
    "packages": _l("Packages"),
}
ZERO_DATES = ("0000-00-00", "0000-00-00 00:00:00")  # Stalker's "no date"
PLACEHOLDERS = {
    "accounts": _l("Search: login, name, account number, MAC, phone, plan"),
    "stb": _l("Search: MAC, account number, login, IP"), "channels": _l("Search: number, name"),
    "subscriptions": _l("Search: account number, MAC"), "tariffs": _l("Search: plan, package"),
}
# Messages of portal.platforms.stalker.console, listed so that pybabel puts them in the catalog.
MESSAGES = [
    _l("no such row in the snapshot: refresh the table"),
    _l("no such account"),
    _l("a MAC address like 00:1A:79:12:34:56"),
    _l("already registered"),
    _l("at most 64 characters"),
    _l("no agent of kind iptv bound to the stalker platform: create one in Agents"),
    _l("no such STB in billing (removed already?)"),
    _l("the Stalker account has no login and no account number to name the billing account after: set one of "
       "them in Stalker"),
    _l("the Stalker account has no login, no MAC, and its account number cannot be a TV ID: billing could not "
       "find it in Stalker again; set a login or a MAC in Stalker"),
]


def can_write() -> bool:
    return current_user.role in WRITERS


def _error_text(e: BillingError) -> str:
    return "; ".join(f"{k}: {v}" for k, v in error_fields(e).items())


def _columns(kind: str, info) -> list[str]:
    if kind == "accounts":
        # every column Stalker returns; the ones staff look for first, then the rest by name
        first = ["login", "full_name", "account_number", "tariff_plan", "status", "online", "stb_mac"]
        sent = list(info.columns) if info is not None and info.columns else first
        return [c for c in first if c in sent] + [c for c in sent if c not in first]
    return COLUMNS[kind]


def _headers(columns: list[str]) -> list[tuple[str, str]]:
    """(field, header) of each column: a field Stalker added that we have no words for keeps
    its name."""
    return [(c, str(HEADERS.get(c, c))) for c in columns]


def _badge(state: str, title: str) -> str:
    return f'<span class="badge badge-{state}">{escape(title)}</span>'


def _cells(columns: list[str], rows) -> list[Markup]:
    """Each row's data cells (``<td>``s) as HTML, every value escaped. Built here with plain
    strings rather than by a Jinja macro per cell: 50 rows × 17 columns through a macro cost
    several times the page's query."""
    enabled, disabled = _badge("active", _("enabled")), _badge("disabled", _("disabled"))
    yes, no = _badge("active", _("yes")), _badge("inactive", _("no"))
    none, optional = '<span class="muted">—</span>', escape(_("optional"))

    def packages(value) -> str:
        items = []
        for p in value or []:
            notes = [escape(p.get("external_id") or "")]
            if str(p.get("optional")) == "1":
                notes.append(optional)
            if p.get("price") and p.get("price") != "0.00":
                notes.append(escape(money(p["price"])))
            items.append(f'<li>{escape(p.get("name") or "")} <span class="muted">{" · ".join(notes)}</span></li>')
        return f'<ul class="nested">{"".join(items)}</ul>'

    def cell(key: str, value) -> str:
        if key == "status" and value is not None and value != "":
            return enabled if str(value) == "1" else disabled
        if key in ("online", "additional_services_on"):
            return yes if str(value) == "1" else no
        if value in ZERO_DATES:
            return none
        if key == "packages":
            return packages(value)
        if key == "account_balance" and value not in (None, ""):
            return escape(money(value))  # the balance billing pushed, in its currency
        moment = platform_moment(value)  # Stalker's dates and times, as the page's language writes them
        if moment is not None:
            return escape(moment)
        if isinstance(value, list):
            return "<br>".join(escape(v) for v in value)
        return none if value is None else escape(value)

    heads = [f'<td class="stalker-{escape(c)}">' for c in columns]
    return [Markup("".join(f"{h}{cell(c, r.data.get(c))}</td>" for h, c in zip(heads, columns))) for r in rows]


def _table_context(kind: str) -> dict:
    info = console.snapshot_info().get(kind)
    args = {"q": request.args.get("q", "").strip(), "after": int_arg("after"), "limit": PAGE_SIZE}
    query = db.select(StalkerSnapshotRow).where(StalkerSnapshotRow.kind == kind)
    if args["q"]:
        query = query.where(StalkerSnapshotRow.search.contains(args["q"].lower(), autoescape=True))
    args_no_q = {**args, "q": ""}  # the search column is lower-case already: a plain LIKE
    page = paginate(query, StalkerSnapshotRow, args_no_q)
    rows = page["items"]
    columns = _columns(kind, info)
    ctx = {"kind": kind, "info": info, "rows": rows, "next_after": page["next_after"], "q": args["q"],
           "columns": columns, "headers": _headers(columns), "cells": _cells(columns, rows), "can_write": can_write(),
           "appending": args["after"] is not None}
    if kind == "accounts":
        ctx["linked"], ctx["known_tariffs"] = console.page_links([r.data for r in rows])
        ctx["conflicts"] = console.page_conflicts([r.data for r in rows])
        ctx["new_logins"] = [None if r.data.get("login") else console.generated_login(
            str(r.data.get("account_number") or "")) for r in rows]
    if kind == "tariffs":
        ids = [r.data.get("external_id") for r in rows]
        ctx["known_tariffs"] = catalog.known_plans(ids)
        ctx["imported"] = catalog.imported_plans()
    if kind == "stb":
        ctx.update(_stb_context())
    if kind == "channels":
        ctx["billing_channels"] = db.session.scalar(db.select(db.func.count()).select_from(StalkerChannel))
    return ctx


@bp.route("/stalker")
@bp.route("/stalker/<tab>")
@staff_required()
def stalker(tab: str = "accounts"):
    """The Stalker console: one snapshot table (HTMX: only its rows), or the raw console."""
    if tab not in TABS:
        abort(404)
    if tab == "console":
        if current_user.role != "admin":
            abort(403)
        return render_template("admin/stalker/page.html", tab=tab, tabs=TABS, can_write=can_write(),
                               placeholder="", method="GET", resource="", params="")
    ctx = _table_context(tab)
    if is_htmx():
        return render_template("admin/stalker/_rows.html", **ctx)
    return render_template("admin/stalker/page.html", tab=tab, tabs=TABS, placeholder=PLACEHOLDERS[tab], **ctx)


@bp.route("/stalker/refresh/<tab>", methods=["POST"])
@staff_required(*WRITERS)
def stalker_refresh(tab: str):
    """Refresh one table (or all) from Stalker in a job; answers its progress row."""
    if tab not in (*console.KINDS, "all"):
        abort(404)
    kinds = list(console.KINDS) if tab == "all" else [tab]
    job_id = start_job("jobs.stalker.refresh", kinds, actor(), timeout=3600)
    db.session.commit()
    return progress_row(job_id, _("Refreshing from Stalker…"), _("Refreshed: %(result)s — reload the table"))


@bp.route("/stalker/accounts/<int:row_id>/add")
@staff_required(*WRITERS)
def stalker_add_dialog(row_id: int):
    """"+": the dialog that asks how billing starts for this user, with what each way moves."""
    try:
        ctx = console.add_preview(row_id)
    except console.InBilling as e:
        return render_template("admin/stalker/_add_dialog.html", row_id=row_id, in_billing=_account(e.account_id),
                               errors={}, options=START_OPTIONS)
    except BillingError as e:
        return render_template("admin/stalker/_add_dialog.html", row_id=row_id, errors=error_fields(e),
                               options=START_OPTIONS), 422
    return render_template("admin/stalker/_add_dialog.html", row_id=row_id, errors={}, options=START_OPTIONS, **ctx)


def _account(account_id: int):
    return db.session.get(Account, account_id)


@bp.route("/stalker/accounts/<int:row_id>/add", methods=["POST"])
@staff_required(*WRITERS)
def stalker_add_account(row_id: int):
    """"+": add this Stalker account to billing, billing starting as chosen (no call to
    Stalker from here). Answers the dialog's last word and, out of band, the row's link."""
    start = request.form.get("start") or None
    if start is not None and start not in START_OPTIONS:
        return _add_error(row_id, {"start": _("one of %(options)s", options=", ".join(START_OPTIONS))})
    try:
        account = console.add_account(row_id, actor=actor(), start=start)
        db.session.commit()
        message = _("Added to billing: %(login)s", login=account.login)
    except console.InBilling as e:
        db.session.rollback()
        account = _account(e.account_id)
        message = _("%(login)s is in billing already", login=account.login)
    except BillingError as e:
        db.session.rollback()
        return _add_error(row_id, error_fields(e))
    return with_toast(render_template("admin/stalker/_add_done.html", row_id=row_id, account=account,
                                      message=message), message)


def _add_error(row_id: int, errors: dict):
    text = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return with_toast(render_template("admin/stalker/_add_dialog.html", row_id=row_id, errors=errors,
                                      options=START_OPTIONS), text, status=422)


@bp.route("/stalker/accounts/<int:row_id>/delete", methods=["POST"])
@staff_required(*WRITERS)
def stalker_delete_account(row_id: int):
    """Delete this account from Stalker (after the confirmation; billing is not touched)."""
    job_id = start_job("jobs.stalker.delete_account", row_id, actor())
    return progress_row(job_id, _("Deleting from Stalker…"), _("Deleted from Stalker: %(result)s"))


@bp.route("/stalker/stb/register", methods=["POST"])
@staff_required(*WRITERS)
def stalker_register_stb():
    """Register an STB in billing on an account (by login or id), by MAC and serial."""
    account = request.form.get("account", "").strip()
    ident = int(account) if account.isdigit() else account
    try:
        stb = console.register_stb(ident, request.form.get("mac", ""), request.form.get("serial", "").strip() or None,
                                   actor=actor())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return render_template("admin/stalker/_stb_form.html", errors=error_fields(e), values=request.form), 422
    return with_toast(render_template("admin/stalker/_stb_form.html", errors={}, values={}, done=stb),
                      _("STB %(mac)s registered", mac=stb.mac), events=("stalker-stbs",))  # the list reloads


def _stb_context() -> dict:
    q = request.args.get("stb_q", "").strip()
    page = console.billing_stbs(q, int_arg("stb_after"), PAGE_SIZE)
    return {"stbs": page["items"], "stbs_next": page["next_after"], "stb_q": q,
            "stbs_appending": int_arg("stb_after") is not None}


@bp.route("/stalker/stb/billing")
@staff_required()
def stalker_billing_stbs():
    """The STBs registered in billing: rows (search, Show more), for HTMX."""
    return render_template("admin/stalker/_stb_rows.html", can_write=can_write(), **_stb_context())


@bp.route("/stalker/stb/<int:stb_id>/remove", methods=["POST"])
@staff_required(*WRITERS)
def stalker_remove_stb(stb_id: int):
    """Remove an STB from billing (after the confirmation); the account's Stalker user loses
    that stb_mac at the next sync."""
    try:
        stb = console.remove_stb(stb_id, actor=actor())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return with_toast(Markup('<tr><td colspan="5" class="form-error">{}</td></tr>').format(_error_text(e)),
                          _error_text(e), status=422)
    return with_toast("", _("STB %(mac)s removed from billing", mac=stb.mac))


@bp.route("/stalker/channels/import", methods=["POST"])
@staff_required(*WRITERS)
def stalker_import_channels():
    """Replace billing's channel list with Stalker's (a job, one transaction)."""
    job_id = start_job("jobs.stalker.import_channels", actor())
    return progress_row(job_id, _("Importing channels…"), _("Channels imported: %(result)s"))


@bp.route("/stalker/tariffs/<int:row_id>/import", methods=["POST"])
@staff_required(*WRITERS)
def stalker_import_tariff(row_id: int):
    """Create (or re-sync) the billing tariff of this plan: id = external_id."""
    try:
        tariff = console.import_tariff(row_id, actor=actor())
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        return with_toast(Markup('<span class="form-error">{}</span>').format(_error_text(e)), _error_text(e),
                          status=422)
    link = Markup('<a href="{}">{}</a> · {}').format(url_for("admin.tariffs"), f"#{tariff.id} {tariff.name}",
                                                      _("imported"))
    return with_toast(link, _("Tariff %(id)s «%(name)s» imported", id=tariff.id, name=tariff.name))


@bp.route("/stalker/check", methods=["POST"])
@staff_required(*WRITERS)
def stalker_check():
    """Check the connection (a job): reachable, credentials accepted, API switched on."""
    job_id = start_job("jobs.stalker.check", actor(), timeout=120)
    return render_template("admin/stalker/_check.html", job_id=job_id, **check_view(job_id))


def check_view(job_id: str | None) -> dict:
    """The check's row: the shared job view (portal/admin/jobs.py), drawn as the check's answer
    (it polls while "running": the job waits, runs, or Redis is away for a moment)."""
    view = job_view(job_id)
    running = ("queued", "started", "unavailable") if job_id else ("queued", "started")
    state = "running" if view["state"] in running else {"missing": "gone"}.get(view["state"], view["state"])
    return {"state": state, "outcome": view.get("value"), "error": view.get("error")}


@bp.route("/stalker/check/<job_id>")
@staff_required()
def stalker_check_progress(job_id: str):
    """How did the connection check go? (Polled.)"""
    return render_template("admin/stalker/_check.html", job_id=job_id, **check_view(job_id))


@bp.route("/stalker/console", methods=["POST"])
@staff_required("admin")
def stalker_console():
    """A raw request to Stalker (method, resource, parameters), run by a job."""
    method = request.form.get("method", "GET").upper()
    resource = request.form.get("resource", "").strip()
    params = request.form.get("params", "")
    errors = {}
    if method not in ("GET", "POST", "PUT", "DELETE"):
        errors["method"] = _("one of GET, POST, PUT, DELETE")
    if not resource:
        errors["resource"] = _("required")
    if errors:
        return render_template("admin/stalker/_console_answer.html", errors=errors, state="error"), 422
    job_id = start_job("jobs.stalker.raw", method, resource, params, actor(), timeout=120)
    return render_template("admin/stalker/_console_answer.html", errors={}, job_id=job_id, **check_view(job_id))


@bp.route("/stalker/console/<job_id>")
@staff_required("admin")
def stalker_console_answer(job_id: str):
    """The raw request's answer, pretty-printed (polled until the job is over)."""
    view = check_view(job_id)
    return render_template("admin/stalker/_console_answer.html", errors={}, job_id=job_id, answer=view["outcome"],
                           **view)


# -- the account page's Stalker panel ----------------------------------------------------------

HOW = {"created": _l("created by billing"), "imported": _l("added from Stalker with “+”"),
       "linked": _l("linked by staff"), "migrated": _l("found by the sync before bindings were kept")}
# Messages of portal.platforms.stalker.binding, listed so that pybabel puts them in the catalog.
BINDING_MESSAGES = [
    _l("no Stalker user to link: sync the account first"),
    _l("the account is bound to a Stalker user already"),
    _l("that is the login Stalker has for another user"),
    _l("the Stalker user has no login, account number or MAC to find it by"),
]


def stalker_panel(a: Account) -> dict | None:
    """What the account page shows about Stalker: None for an account that is not on it."""
    row = binding.get(a.id) if a is not None else None
    state = db.session.scalar(select(SyncState).filter_by(account_id=a.id, platform="stalker")) if a else None
    if a is None or (row is None and state is None and not outbox.on_platform(a.id, "stalker")):
        return None
    conflict = (row.conflict or None) if row is not None else None
    return {"binding": row, "state": state, "conflict": conflict, "how": HOW,
            "not_in_plan": ((state.actual or {}).get("not_in_plan") or []) if state and state.state == "ok" else [],
            "can_act": current_user.role in WRITERS}


@bp.app_context_processor
def _stalker_binding_globals():
    return {"stalker_panel": stalker_panel}


def _panel(a: Account, **extra) -> str:
    return render_template("admin/stalker/_binding.html", a=a, **extra)


def _account_or_404(account_id: int) -> Account:
    a = db.session.get(Account, account_id)
    if a is None or stalker_panel(a) is None:
        abort(404)
    return a


@bp.route("/accounts/<int:account_id>/stalker")
@staff_required()
def account_stalker(account_id: int):
    """The account's Stalker panel alone."""
    return _panel(_account_or_404(account_id))


@bp.route("/accounts/<int:account_id>/stalker/link", methods=["POST"])
@staff_required(*WRITERS)
def account_stalker_link(account_id: int):
    """Staff confirm the Stalker user of the conflict is this subscriber: bind it and sync."""
    a = _account_or_404(account_id)
    try:
        binding.link(a.id, actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _panel(a, errors=error_fields(e)), 422
    reconcile.request_sync(a.id, actor())
    db.session.commit()
    return with_toast(_panel(a), _("Linked: billing's data will be written onto this Stalker user."))


@bp.route("/accounts/<int:account_id>/stalker/login", methods=["POST"])
@staff_required(*WRITERS)
def account_stalker_login(account_id: int):
    """Create the account's Stalker user under another login (its own is a stranger's there)."""
    a = _account_or_404(account_id)
    try:
        binding.change_login(a.id, request.form.get("login", ""), actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _panel(a, errors=error_fields(e), login=request.form.get("login", "")), 422
    reconcile.request_sync(a.id, actor())
    db.session.commit()
    return with_toast(_panel(a), _("The Stalker user will be created with the new login."))
