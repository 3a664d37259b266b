"""Grace, hold-until and voluntary freezes, staff side. The URL map of the area:

    GET  /blocking-rules                     blocking_rules        grace and freeze rules, freezes in force (admin)
    POST /blocking-rules/grace               save_grace_rule       (admin only)
    POST /blocking-rules/freeze              save_freeze_rules     (admin only)
    POST /contracts/<id>/holds               save_contract_holds   the contract's own grace and "do not block until"
    POST /accounts/<id>/freeze               freeze_account        freeze on the account page (managers, admins)
    POST /accounts/<id>/unfreeze             unfreeze_account      end a freeze today

The contract page shows the contract's grace, hold-until and, while in grace, the day of the
block (templates/admin/_contract_holds.html); the account page the freeze in force or the form
(templates/admin/_account_freeze.html). Staff freezes keep to the period limits but not to the
yearly limit, the cooldown or the switch, and take no fee (billing.freeze.offer, staff=True).
The rules and decisions are portal.billing.grace and portal.billing.freeze.
"""
from __future__ import annotations

import secrets

from flask import render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..billing import freeze, grace
from ..billing.charging import apply_balance_rule
from ..billing.errors import BillingError
from ..extensions import db
from ..models import Account, Contract, Freeze
from ..web import form_text
from . import bp
from .auth import WRITERS, actor, staff_required
from .pages import attempt, form_bool, get_or_404, render_account, render_contract

# Billing's refusals and field messages, listed so that pybabel puts them in the catalog.
MESSAGES = [_l("voluntary freezes are off"), _l("the account is not in service"), _l("the account is frozen already"),
            _l("the limit of freezes for this year is reached"), _l("the pause between freezes is not over yet"),
            _l("not enough money for the fee"), _l("the account is not frozen"), _l("must be today or later"),
            _l("shorter than the shortest freeze allowed"), _l("longer than the longest freeze allowed"),
            _l("a date (YYYY-MM-DD)"), _l("from 0 to 90 days"), _l("must be a whole number of days"),
            _l("must be a whole number"), _l("must not be over the maximum"), _l("at most ten years ahead"),
            _l("from 1 to 366"), _l("from 1 to 12"), _l("from 0 to 366"),
            _l("freeze the account instead: voluntary freezes are on")]
IN_FORCE_SHOWN = 200


def staff_freeze(account: Account) -> dict:
    """What the account page's freeze panel shows: the freeze in force, or staff's offer."""
    return {"active": freeze.active(account), "offer": freeze.offer(account, staff=True),
            "nonce": secrets.token_hex(16)}


def contract_holds(contract: Contract) -> dict:
    """What the contract page shows of its grace and hold-until."""
    return {"hold_until": grace.hold_until(contract), "block_on": grace.grace_block_on(contract),
            "grace_days": grace.contract_grace_days(contract), "operator_days": grace.operator_days()}


bp.add_app_template_global(staff_freeze, "staff_freeze")
bp.add_app_template_global(contract_holds, "contract_holds")


def _rules_page(errors: dict | None = None, form: str | None = None):
    in_force = db.session.scalars(select(Freeze).where(Freeze.status == "active")
                                  .order_by(Freeze.until, Freeze.id).limit(IN_FORCE_SHOWN)).all()
    return render_template("admin/blocking_rules.html", grace_rule=grace.rule(), freeze_rule=freeze.rule(),
                           errors=errors or {}, open_form=form, values=request.form if errors else None,
                           in_force=in_force)


@bp.route("/blocking-rules")
@staff_required("admin")
def blocking_rules():
    """The operator's grace before the balance block, the freeze limits, the freezes in force."""
    return _rules_page()


@bp.route("/blocking-rules/grace", methods=["POST"])
@staff_required("admin")
def save_grace_rule():
    return attempt(lambda: grace.save_rule({"days": form_text("days")}, actor=actor()), _("Grace saved."),
                   url_for("admin.blocking_rules"), lambda errors: _rules_page(errors, "grace"))


@bp.route("/blocking-rules/freeze", methods=["POST"])
@staff_required("admin")
def save_freeze_rules():
    def save():
        data = {"enabled": form_bool("enabled"), "min_days": form_text("min_days"),
                "max_days": form_text("max_days"), "per_year": form_text("per_year"),
                "cooldown_days": form_text("cooldown_days"), "fee": form_text("fee")}
        return freeze.save_rule(data, actor=actor())

    return attempt(save, _("Freeze rules saved."),
                   url_for("admin.blocking_rules"), lambda errors: _rules_page(errors, "freeze"))


@bp.route("/contracts/<int:contract_id>/holds", methods=["POST"])
@staff_required(*WRITERS)
def save_contract_holds(contract_id: int):
    """The contract's own grace and "do not block until"; the balance rule at once (a hold lifts
    a balance block, its end or a shorter grace may block)."""
    c = get_or_404(Contract, contract_id)

    def save():
        grace.save_contract(c, {"grace_days": form_text("grace_days"),
                                "do_not_block_until": form_text("do_not_block_until")}, actor=actor())
        apply_balance_rule([c.id], actor=actor())

    return attempt(save, _("Blocking settings saved."), url_for("admin.contract", contract_id=c.id),
                   lambda errors: render_contract(c, errors, "holds"))


@bp.route("/accounts/<int:account_id>/freeze", methods=["POST"])
@staff_required(*WRITERS)
def freeze_account(account_id: int):
    a = get_or_404(Account, account_id)
    nonce = request.form.get("nonce", "")

    def start():
        if not nonce:
            raise BillingError({"nonce": "required"})
        return freeze.start(a, form_text("until"), actor=actor(), staff=True, request_key=f"staff:{nonce}"[:100])

    def said(result) -> str:
        return _("Frozen through %(day)s.", day=format_date(result[0].until, "short"))

    return attempt(start, said, url_for("admin.account", account_id=a.id),
                   lambda errors: render_account(a, errors, "freeze"))


@bp.route("/accounts/<int:account_id>/unfreeze", methods=["POST"])
@staff_required(*WRITERS)
def unfreeze_account(account_id: int):
    a = get_or_404(Account, account_id)
    return attempt(lambda: freeze.end(a, actor=actor()), _("The freeze is over."),
                   url_for("admin.account", account_id=a.id), lambda errors: render_account(a, errors, "freeze"))
