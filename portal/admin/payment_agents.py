"""Payment agents (banks, terminals, aggregators paying in over the provider protocol): admins
define them and read their calls. Billing decides (portal/billing/agent_payments.py); this
module parses forms and renders.

    GET  /payment-agents                     the agents, their URLs, the create form (admin)
    POST /payment-agents/new                 create (admin)
    GET  /payment-agents/<id>, POST          the agent's page: its URL, totals, the edit form (admin)
    GET  /payment-agents/<id>/calls          its calls: ?q= txn_id or account, ?result=, ?before= (admin)
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..billing import agent_payments as ap
from ..billing.errors import BillingError
from ..extensions import db
from ..models import PROVIDER_RESULTS, PaymentAgent
from ..notifications.links import external_url
from ..web import error_fields, int_arg, page_or_fragment
from . import bp
from .auth import actor, staff_required

# The protocol's result codes in words, for the calls list and its filter.
RESULT_TITLES = {
    0: _l("0 · success"), 1: _l("1 · temporary error"), 4: _l("4 · wrong account format"),
    5: _l("5 · account not found"), 7: _l("7 · payment forbidden"), 241: _l("241 · sum too small"),
    242: _l("242 · sum too large"), 300: _l("300 · other error"),
}
ACCOUNT_FIELD_TITLES = {"contract": _l("contract number"), "login": _l("account login")}
# billing's messages for this form, listed so that pybabel puts them in the catalog
MESSAGES = [
    _l("1-40 lowercase latin letters, digits and -, starting with a letter or digit"),
    _l("required: at least one address or network (0.0.0.0/0 for any)"),
    _l("must not be below the minimum sum"),
    _l("at most 100"),
    _l("up to 200 characters, no spaces at the ends"),
]


def _form() -> dict:
    f = request.form
    return {"name": f.get("name", ""), "slug": f.get("slug", ""), "account_field": f.get("account_field", ""),
            "networks": f.get("networks", ""), "secret": f.get("secret", ""),
            "clear_secret": "clear_secret" in f, "min_sum": f.get("min_sum", ""), "max_sum": f.get("max_sum", ""),
            "fee_percent": f.get("fee_percent", ""), "fee_fixed": f.get("fee_fixed", ""),
            "fee_withheld": "fee_withheld" in f, "enabled": "enabled" in f}


def agent_url(agent: PaymentAgent) -> str:
    return external_url("provider.call", slug=agent.slug)


def _context(agent=None, values=None, errors=None) -> dict:
    defaults = {"account_field": "contract", "networks": "", "min_sum": "1.00", "max_sum": "15000.00",
                "fee_percent": "0", "fee_fixed": "0.00", "enabled": True}
    v = values if values is not None else (ap.agent_values(agent) if agent else defaults)
    v = {k: val for k, val in v.items() if k != "secret"}  # a typed secret is never sent back
    if agent is not None:
        v["has_secret"] = bool(agent.secret_enc)
    return {"v": v, "errors": errors or {}, "agent": agent,
            "account_fields": [(k, str(t)) for k, t in ACCOUNT_FIELD_TITLES.items()],
            "action": url_for("admin.payment_agent", ident=agent.id) if agent else url_for("admin.payment_agent_new")}


def _list(form=None, status=200):
    agents = db.session.scalars(select(PaymentAgent).order_by(PaymentAgent.name)).all()
    return render_template("admin/payment_agents.html", agents=agents, form=form or _context(),
                           agent_url=agent_url, account_field_titles=ACCOUNT_FIELD_TITLES), status


@bp.route("/payment-agents")
@staff_required("admin")
def payment_agents():
    """Payment agents and the URL each calls."""
    return _list()


@bp.route("/payment-agents/new", methods=["POST"])
@staff_required("admin")
def payment_agent_new():
    data = _form()
    try:
        agent = ap.save_agent(data, actor=actor())
    except BillingError as e:
        db.session.rollback()
        return _list(_context(values=data, errors=error_fields(e)), 422)
    db.session.commit()
    flash(_("Payment agent created: %(name)s", name=agent.name), "ok")
    return redirect(url_for("admin.payment_agent", ident=agent.id), 303)


def _load(ident: int) -> PaymentAgent:
    agent = db.session.get(PaymentAgent, ident)
    if agent is None:
        abort(404)
    return agent


def _page(agent, form, status=200):
    return render_template("admin/payment_agents_agent.html", agent=agent, form=form, url=agent_url(agent),
                           totals=ap.totals(agent), nav_section="admin.payment_agents",
                           account_field_titles=ACCOUNT_FIELD_TITLES), status


@bp.route("/payment-agents/<int:ident>", methods=["GET", "POST"])
@staff_required("admin")
def payment_agent(ident: int):
    agent = _load(ident)
    if request.method == "GET":
        return _page(agent, _context(agent))
    data = _form()
    try:
        ap.save_agent(data, actor=actor(), agent=agent)
    except BillingError as e:
        db.session.rollback()
        agent = _load(ident)
        return _page(agent, _context(agent, values=data, errors=error_fields(e)), 422)
    db.session.commit()
    flash(_("Payment agent saved"), "ok")
    return redirect(url_for("admin.payment_agent", ident=ident), 303)


@bp.route("/payment-agents/<int:ident>/calls")
@staff_required("admin")
def payment_agent_calls(ident: int):
    """The agent's calls, newest first; search by txn_id or account, filter by result."""
    agent = _load(ident)
    q = request.args.get("q", "")[:64]
    result = int_arg("result") if request.args.get("result") != "0" else 0
    if result is not None and result not in PROVIDER_RESULTS:
        result = None
    page = ap.calls_page(agent, q=q, result=result, before=int_arg("before"))
    ctx = dict(agent=agent, page=page, q=q, result=result, payments=ap.payments_of(page["items"]),
               results=[(code, str(t)) for code, t in RESULT_TITLES.items()], result_titles=RESULT_TITLES,
               nav_section="admin.payment_agents")
    return page_or_fragment("admin/payment_agents_calls.html", "admin/payment_agents_calls_rows.html", **ctx)
