"""Reference data: agents, catalog services, tariffs, extra-field definitions, platform
connections, staff users and API tokens.

URL map (any staff member reads the catalog pages; only ``admin`` changes them; the staff and
token pages are for admins only):

    GET  /agents, /services, /tariffs, /extra-fields    the list; ?q= searches (HTMX: rows only)
    POST /<list>/new                                     create (admin)
    GET  /<list>/<id>, POST /<list>/<id>                 the edit form, save (admin)
    GET  /connections                                    each known platform and its connection
    POST /connections/<kind>                             save a connection (admin)
    GET  /staff, POST /staff/new                         staff users (admin)
    GET  /staff/<id>, POST /staff/<id>                   name and role (admin)
    POST /staff/<id>/password, /staff/<id>/enabled       new password, disable / enable (admin)
    GET  /api-tokens, POST /api-tokens/new               API tokens; the new token is shown once
    POST /api-tokens/<id>/revoke                         revoke (admin)

Forms post with HTMX and get their own fragment back: 422 with the errors beside the fields
and the typed values kept, or the fresh fragment with a toast. Without JavaScript the same
forms work as plain posts (redirect after success). Billing decides; this module parses
forms and renders.

The hidden "monthly fee" services that tariffs charge through are not listed on the services
page and cannot be edited there: the tariff's fee sets them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from ..billing import directory
from ..billing import staff as staff_billing
from ..billing.errors import BillingError
from ..extensions import db
from ..models import (
    AGENT_KINDS,
    CHARGE_MODES,
    CHARGE_PERIODS,
    EXTRA_FIELD_TYPES,
    IPTV_KINDS,
    ROLES,
    TARIFF_KINDS,
    Agent,
    ApiToken,
    CatalogService,
    ExtraFieldDefinition,
    PlatformConnection,
    StaffUser,
    Tariff,
)
from ..platforms import connections as platform_connections
from ..platforms import registry
from ..web import error_fields, form_ids, form_text, is_htmx, page_or_fragment, with_toast
from . import bp
from .auth import actor, staff_required

# Choice values are stored in English; these are their titles on the pages.
LABELS = {
    "services": _l("services"), "radius": "RADIUS", "netflow": "NetFlow", "intercom": _l("intercom"),
    "iptv": "IPTV", "hosting": _l("hosting"), "internet": _l("internet"),
    "month": _l("per month"), "day": _l("per day"),
    "monthly_advance": _l("monthly in advance"), "daily_prorata": _l("daily pro rata"),
    "basic": _l("basic"), "additional": _l("additional"),
    "string": _l("text"), "integer": _l("integer"), "boolean": _l("yes / no"),
    "admin": _l("admin"), "manager": _l("manager"), "viewer": _l("viewer"),
}
# Messages from portal.platforms.connections and portal.billing.staff, listed so that pybabel
# puts them in the catalog (portal.web.error_fields translates them).
MESSAGES = [
    _l("an http:// or https:// URL"),
    _l("no credentials in the URL: give the login and the password separately"),
    _l("at most 200 characters"),
    _l("you cannot take the admin role from yourself"),
    _l("you cannot disable yourself"),
    _l("one line KEY=VALUE per option"),
]


def label(value) -> str:
    return str(LABELS.get(value, value)) if value is not None else ""


def options(values) -> list[tuple[str, str]]:
    return [(v, label(v)) for v in values]


def platform_title(name: str | None) -> str:
    if not name:
        return ""
    return registry.get(name).title if name in registry.known_platforms() else name


def platform_options() -> list[tuple[str, str]]:
    return [(name, platform_title(name)) for name in registry.known_platforms()]


def can_edit() -> bool:
    return current_user.role == "admin"


@bp.app_context_processor
def reference_helpers():
    return {"ref_label": label, "platform_title": platform_title}


def _fee_service_ids():
    return select(Tariff.fee_service_id).where(Tariff.fee_service_id.is_not(None))


def _search(query, columns, q: str):
    q = q.strip()
    return query.where(or_(*(c.icontains(q, autoescape=True) for c in columns))) if q else query


def _visible_services():
    return select(CatalogService).where(CatalogService.id.not_in(_fee_service_ids())).order_by(CatalogService.name)


# -- agents, services, tariffs, extra fields: one pattern, four kinds -------------------------

@dataclass(frozen=True)
class Kind:
    """One kind of reference data: how to list, read a form, save and show it."""

    name: str                            # URL segment and template names: "agents"
    endpoint: str                        # the list's endpoint
    model: type
    save: Callable                       # directory.save_*(data, actor=, <obj_kw>=obj)
    obj_kw: str
    parse: Callable[[], dict]            # the form as billing wants it (typed text kept)
    values: Callable[[object], dict]     # a stored object as form values
    query: Callable[[], object]
    search: tuple
    title: object
    new_title: object
    edit_title: object
    created: object
    saved: object


def _agent_form() -> dict:
    return {"name": request.form.get("name", ""), "kind": form_text("kind"), "platform": form_text("platform")}


def _service_form() -> dict:
    return {"name": request.form.get("name", ""), "price": request.form.get("price", "").strip(),
            "charge_period": form_text("charge_period"), "charge_mode": form_text("charge_mode"),
            "platform": form_text("platform"), "external_id": form_text("external_id"),
            "iptv_kind": form_text("iptv_kind")}


def _tariff_form() -> dict:
    return {"name": request.form.get("name", ""), "kind": form_text("kind"),
            "monthly_fee": request.form.get("monthly_fee", "").strip() or "0",
            "is_multi": "is_multi" in request.form, "service_ids": form_ids("service_ids")}


def _extra_field_form() -> dict:
    return {"name": request.form.get("name", "").strip(), "title": request.form.get("title", ""),
            "type": form_text("type"), "pattern": form_text("pattern"), "required": "required" in request.form}


KINDS = {k.name: k for k in (
    Kind("agents", "admin.agents", Agent, directory.save_agent, "agent", _agent_form,
         lambda a: {"name": a.name, "kind": a.kind, "platform": a.platform},
         lambda: select(Agent).order_by(Agent.name), (Agent.name,),
         _l("Agents"), _l("New agent"), _l("Agent"), _l("Agent created"), _l("Agent saved")),
    Kind("services", "admin.services", CatalogService, directory.save_service, "service", _service_form,
         lambda s: {f: getattr(s, f) for f in directory.SERVICE_FIELDS} | {"price": str(s.price)},
         _visible_services, (CatalogService.name, CatalogService.external_id),
         _l("Services"), _l("New service"), _l("Service"), _l("Service created"), _l("Service saved")),
    Kind("tariffs", "admin.tariffs", Tariff, directory.save_tariff, "tariff", _tariff_form,
         lambda t: {"name": t.name, "kind": t.kind, "monthly_fee": str(t.monthly_fee), "is_multi": t.is_multi,
                    "service_ids": [s.id for s in t.services]},
         lambda: select(Tariff).options(selectinload(Tariff.services)).order_by(Tariff.name), (Tariff.name,),
         _l("Tariffs"), _l("New tariff"), _l("Tariff"), _l("Tariff created"), _l("Tariff saved")),
    Kind("extra-fields", "admin.extra_fields", ExtraFieldDefinition, directory.save_extra_field, "field",
         _extra_field_form,
         lambda f: {"name": f.name, "title": f.title, "type": f.type, "pattern": f.pattern, "required": f.required},
         lambda: select(ExtraFieldDefinition).order_by(ExtraFieldDefinition.name),
         (ExtraFieldDefinition.name, ExtraFieldDefinition.title),
         _l("Extra fields"), _l("New extra field"), _l("Extra field"), _l("Extra field created"),
         _l("Extra field saved")),
)}


def _template(kind: Kind, part: str) -> str:
    return f"admin/reference/{part}{kind.name.replace('-', '_')}.html"


def _choices() -> dict:
    return {
        "agent_kinds": options(AGENT_KINDS), "platforms": platform_options(),
        "charge_periods": options(CHARGE_PERIODS), "charge_modes": options(CHARGE_MODES),
        "iptv_kinds": options(IPTV_KINDS), "tariff_kinds": options(TARIFF_KINDS),
        "field_types": options(EXTRA_FIELD_TYPES),
    }


def _form_context(kind: Kind, obj=None, values=None, errors=None) -> dict:
    ctx = {"kind": kind, "obj": obj, "v": values if values is not None else (kind.values(obj) if obj else {}),
           "errors": errors or {}, "choices": _choices(),
           "action": url_for("admin.ref_save", name=kind.name, ident=obj.id) if obj
           else url_for("admin.ref_create", name=kind.name)}
    if kind.name == "tariffs":
        ctx["service_options"] = db.session.scalars(_visible_services()).all()
    return ctx


def _list(kind: Kind, form: dict | None = None, status: int = 200):
    q = request.args.get("q", "")
    items = db.session.scalars(_search(kind.query(), kind.search, q)).all()
    ctx = {"items": items, "q": q, "can_edit": can_edit(), "rows_template": _template(kind, "_rows_")}
    if can_edit():
        ctx["form"] = form or _form_context(kind)
    return page_or_fragment(_template(kind, ""), ctx["rows_template"], **ctx, kind=kind), status


def _rows(kind: Kind) -> str:
    items = db.session.scalars(kind.query()).all()
    return render_template(_template(kind, "_rows_"), items=items, can_edit=can_edit(), kind=kind)


@bp.route("/agents")
@staff_required()
def agents():
    """Agents: what serves an account (its kind and the platform behind it)."""
    return _list(KINDS["agents"])


@bp.route("/services")
@staff_required()
def services():
    """Catalog services with their price, charging and platform."""
    return _list(KINDS["services"])


@bp.route("/tariffs")
@staff_required()
def tariffs():
    """Tariffs with their monthly fee and the services they offer."""
    return _list(KINDS["tariffs"])


@bp.route("/extra-fields")
@staff_required()
def extra_fields():
    """Extra fields staff declare for accounts."""
    return _list(KINDS["extra-fields"])


_KIND_PATH = "<any(agents, services, tariffs, 'extra-fields'):name>"


@bp.route(f"/{_KIND_PATH}/new", methods=["POST"])
@staff_required("admin")
def ref_create(name: str):
    kind = KINDS[name]
    data = kind.parse()
    try:
        obj = kind.save(data, actor=actor())
    except BillingError as e:
        db.session.rollback()
        form = _form_context(kind, values=data, errors=error_fields(e))
        if is_htmx():
            return render_template("admin/reference/_form.html", form=form), 422
        return _list(kind, form=form, status=422)
    db.session.commit()
    message = f"{kind.created}: {_name(obj)}"
    if not is_htmx():
        flash(message, "ok")
        return redirect(url_for(kind.endpoint), 303)
    body = render_template("admin/reference/_form.html", form=_form_context(kind)) + \
        f'<template><tbody id="rows" hx-swap-oob="true">{_rows(kind)}</tbody></template>'
    return with_toast(body, message)


def _name(obj) -> str:
    return getattr(obj, "title", None) or obj.name


def _load(kind: Kind, ident: int):
    obj = db.session.get(kind.model, ident)
    if obj is None or (kind.name == "services" and obj.id in db.session.scalars(_fee_service_ids()).all()):
        abort(404)
    return obj


@bp.route(f"/{_KIND_PATH}/<int:ident>", methods=["GET", "POST"])
@staff_required("admin")
def ref_save(name: str, ident: int):
    kind = KINDS[name]
    obj = _load(kind, ident)
    if request.method == "GET":
        form = _form_context(kind, obj)
        return page_or_fragment("admin/reference/edit.html", "admin/reference/_form.html", form=form, kind=kind,
                                obj=obj, nav_section=kind.endpoint)
    data = kind.parse()
    try:
        kind.save(data, actor=actor(), **{kind.obj_kw: obj})
    except BillingError as e:
        db.session.rollback()
        obj = _load(kind, ident)
        form = _form_context(kind, obj, values=data, errors=error_fields(e))
        return page_or_fragment("admin/reference/edit.html", "admin/reference/_form.html", form=form, kind=kind,
                                obj=obj, nav_section=kind.endpoint), 422
    db.session.commit()
    message = str(kind.saved)
    if not is_htmx():
        flash(message, "ok")
        return redirect(url_for("admin.ref_save", name=name, ident=ident), 303)
    return with_toast(render_template("admin/reference/_form.html", form=_form_context(kind, obj)), message)


# -- platform connections -----------------------------------------------------------------------

def _options_text(options: dict) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted((options or {}).items()))


def _parse_options(text: str) -> dict:
    """Options as typed in the form: one KEY=VALUE per line (the same shape as the CLI's --option)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BillingError({"options": "one line KEY=VALUE per option"})
        out[key.strip()] = value.strip()
    return out


def _connection_context(kind: str, values: dict | None = None, errors: dict | None = None,
                        open_form: bool = False) -> dict:
    """What a connection's panel shows: only ``connections.public`` (never the password)."""
    row = db.session.scalar(select(PlatformConnection).filter_by(kind=kind))
    shown = platform_connections.public(row) if row else None
    if values is None:
        values = {"url": shown["url"], "login": shown["login"], "options": _options_text(shown["options"]),
                  "enabled": shown["enabled"]} if shown else {"url": "", "login": "", "options": "", "enabled": True}
    return {"kind": kind, "title": registry.get(kind).title, "conn": shown, "v": values,
            "errors": errors or {}, "open_form": open_form or bool(errors), "can_edit": can_edit()}


@bp.route("/connections")
@staff_required()
def connections():
    """Each known platform with its connection: URL, login, whether a password is set, options."""
    panels = [_connection_context(kind) for kind in registry.known_platforms()]
    return render_template("admin/reference/connections.html", panels=panels)


@bp.route("/connections/<kind>", methods=["POST"])
@staff_required("admin")
def save_connection(kind: str):
    """Save a connection; an empty password keeps the stored one, "clear" removes it."""
    if kind not in registry.known_platforms():
        abort(404)
    values = {"url": request.form.get("url", "").strip(), "login": request.form.get("login", "").strip(),
              "options": request.form.get("options", ""), "enabled": "enabled" in request.form}
    password = request.form.get("password", "")
    if "clear_password" in request.form:
        password = ""
    elif password == "":
        password = None
    try:
        platform_connections.save_connection(
            kind, url=values["url"], login=values["login"], password=password,
            options=_parse_options(values["options"]), enabled=values["enabled"], actor=actor())
    except BillingError as e:
        db.session.rollback()
        panel = _connection_context(kind, values=values, errors=error_fields(e))
        if is_htmx():
            return render_template("admin/reference/_connection.html", p=panel), 422
        panels = [panel if k == kind else _connection_context(k) for k in registry.known_platforms()]
        return render_template("admin/reference/connections.html", panels=panels), 422
    db.session.commit()
    message = _("Connection saved: %(name)s", name=registry.get(kind).title)
    if not is_htmx():
        flash(message, "ok")
        return redirect(url_for("admin.connections"), 303)
    return with_toast(render_template("admin/reference/_connection.html", p=_connection_context(kind)), message)


# -- staff users ---------------------------------------------------------------------------------

def _staff_list(form_values=None, errors=None, status=200):
    q = request.args.get("q", "")
    users = db.session.scalars(_search(select(StaffUser).order_by(StaffUser.login),
                                       (StaffUser.login, StaffUser.full_name), q)).all()
    return page_or_fragment("admin/reference/staff.html", "admin/reference/_rows_staff.html", users=users, q=q,
                            values=form_values or {"role": "viewer"}, errors=errors or {},
                            roles=options(ROLES)), status


@bp.route("/staff")
@staff_required("admin")
def staff_users():
    """Staff users: who may log in to the admin interface, with which role."""
    return _staff_list()


@bp.route("/staff/new", methods=["POST"])
@staff_required("admin")
def create_staff():
    data = {"login": request.form.get("login", ""), "full_name": request.form.get("full_name", ""),
            "role": form_text("role"), "password": request.form.get("password", "")}
    typed = {k: v for k, v in data.items() if k != "password"}
    try:
        user = staff_billing.create_staff(data, actor=actor())
    except BillingError as e:
        db.session.rollback()
        if is_htmx():
            return render_template("admin/reference/_staff_form.html", values=typed, errors=error_fields(e),
                                   roles=options(ROLES)), 422
        return _staff_list(typed, error_fields(e), 422)
    db.session.commit()
    flash(_("Staff user created: %(login)s", login=user.login), "ok")
    return _go(url_for("admin.staff_users"))


def _go(url: str):
    """After a change: a redirect, for HTMX as HX-Redirect (the flash message shows there)."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url, 303)


def _staff_card(user: StaffUser, values=None, errors=None, status=200):
    return page_or_fragment("admin/reference/staff_user.html", "admin/reference/_staff_card.html", user=user,
                            values=values or {"full_name": user.full_name, "role": user.role},
                            errors=errors or {}, roles=options(ROLES), myself=user.id == current_user.id,
                            nav_section="admin.staff_users"), status


def _staff_user(ident: int) -> StaffUser:
    return db.session.get(StaffUser, ident) or abort(404)


@bp.route("/staff/<int:ident>", methods=["GET", "POST"])
@staff_required("admin")
def staff_user(ident: int):
    """One staff user: name and role, a new password, disable / enable."""
    user = _staff_user(ident)
    if request.method == "GET":
        return _staff_card(user)
    data = {"full_name": request.form.get("full_name", ""), "role": form_text("role")}
    try:
        staff_billing.update_staff(user, data, actor=actor(), acting_user_id=current_user.id)
    except BillingError as e:
        db.session.rollback()
        return _staff_card(_staff_user(ident), values=data, errors=error_fields(e), status=422)
    db.session.commit()
    return _staff_done(user, _("Staff user saved: %(login)s", login=user.login))


def _staff_done(user: StaffUser, message: str):
    if is_htmx():
        body, _status = _staff_card(user)
        return with_toast(body, message)
    flash(message, "ok")
    return redirect(url_for("admin.staff_user", ident=user.id), 303)


@bp.route("/staff/<int:ident>/password", methods=["POST"])
@staff_required("admin")
def staff_password(ident: int):
    user = _staff_user(ident)
    try:
        staff_billing.set_staff_password(user, request.form.get("password", ""), actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _staff_card(_staff_user(ident), errors=error_fields(e), status=422)
    db.session.commit()
    return _staff_done(user, _("New password set for %(login)s", login=user.login))


@bp.route("/staff/<int:ident>/enabled", methods=["POST"])
@staff_required("admin")
def staff_enabled(ident: int):
    user = _staff_user(ident)
    enable = request.form.get("enabled") == "1"
    try:
        staff_billing.set_staff_enabled(user, enable, actor=actor(), acting_user_id=current_user.id)
    except BillingError as e:
        db.session.rollback()
        return _staff_card(_staff_user(ident), errors=error_fields(e), status=409)
    db.session.commit()
    return _staff_done(user, _("%(login)s can log in again", login=user.login) if enable
                       else _("%(login)s is disabled", login=user.login))


# -- API tokens ----------------------------------------------------------------------------------

def _tokens():
    return db.session.scalars(select(ApiToken).order_by(ApiToken.revoked, ApiToken.id.desc())).all()


def _tokens_page(values=None, errors=None, created=None, status=200):
    return render_template("admin/reference/api_tokens.html", tokens=_tokens(), roles=options(ROLES),
                           values=values or {"role": "viewer"}, errors=errors or {}, created=created), status


@bp.route("/api-tokens")
@staff_required("admin")
def api_tokens():
    """API tokens of operators' systems: name, role, prefix, when last used, revoked."""
    return _tokens_page()


@bp.route("/api-tokens/new", methods=["POST"])
@staff_required("admin")
def create_api_token():
    """Issue a token; its plain text is in this one answer and nowhere else."""
    data = {"name": request.form.get("name", ""), "role": form_text("role")}
    try:
        token, plain = staff_billing.issue_token(data, actor=actor())
    except BillingError as e:
        db.session.rollback()
        if is_htmx():
            return render_template("admin/reference/_token_new.html", values=data, errors=error_fields(e),
                                   roles=options(ROLES), created=None), 422
        return _tokens_page(data, error_fields(e), status=422)
    db.session.commit()
    created = {"name": token.name, "plain": plain}
    if not is_htmx():
        return _tokens_page(created=created)
    body = render_template("admin/reference/_token_new.html", created=created, values={"role": "viewer"},
                           errors={}, roles=options(ROLES)) + \
        '<template><tbody id="rows" hx-swap-oob="true">' + \
        render_template("admin/reference/_rows_tokens.html", tokens=_tokens()) + "</tbody></template>"
    return with_toast(body, _("Token created: %(name)s", name=token.name))


@bp.route("/api-tokens/<int:ident>/revoke", methods=["POST"])
@staff_required("admin")
def revoke_api_token(ident: int):
    token = db.session.get(ApiToken, ident) or abort(404)
    staff_billing.revoke_token(token, actor=actor())
    db.session.commit()
    message = _("Token revoked: %(name)s", name=token.name)
    if not is_htmx():
        flash(message, "ok")
        return redirect(url_for("admin.api_tokens"), 303)
    return with_toast(render_template("admin/reference/_token_row.html", t=token), message)
