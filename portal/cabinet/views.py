"""The cabinet's pages. The whole URL map of the area:

    GET/POST /cabinet/login                        login          (rate limited, kind "cabinet")
    POST     /cabinet/logout                       logout
    GET      /cabinet/                             home           contracts, balances, accounts, prices
    GET      /cabinet/contracts/<id>               contract       the ledger, newest first (?before= pages)
    GET      /cabinet/accounts/<id>                account        status, tariff, services, block/unblock
    POST     /cabinet/accounts/<id>/block          block_account
    POST     /cabinet/accounts/<id>/unblock        unblock_account
    GET/POST /cabinet/password                     change_password

The cabinet keeps its own session key (not Flask-Login, which belongs to staff), so a staff
login and a subscriber login live side by side in one browser. Every id in a URL is looked up
through the logged-in subscriber: a foreign or unknown id is a 404.
"""
from __future__ import annotations

from functools import wraps

from flask import abort, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from .. import login_limits, security
from ..billing import directory, ledger, self_service
from ..billing.errors import BillingError, NotFound
from ..billing.inputs import unsafe_redirect_target
from ..extensions import db
from ..models import Account, Contract, Subscriber
from ..web import error_fields, int_arg, is_htmx, page_or_fragment, with_toast
from . import bp

SESSION_KEY = "cabinet"  # {"id": subscriber id, "key": password fingerprint}
LIMIT_SCOPE = "cabinet"
LEDGER_PAGE = 30
# Billing's messages for the password form, listed so that pybabel puts them in the catalog.
MESSAGES = [_l("wrong password"), _l("the passwords do not match"), _l("the same as the old password"),
            _l("at most 128 characters")]


# -- who is logged in ---------------------------------------------------------------------------

def _start_session(subscriber: Subscriber) -> None:
    """Log in: whatever an earlier cabinet session left is dropped first. Staff (Flask-Login's
    keys), the language and the CSRF token stay: the cookie session has no server-side id an
    attacker could fix, and clearing it all would log out a staff user in the same browser."""
    for key in [k for k in session if k == SESSION_KEY or k.startswith("cabinet_")]:
        session.pop(key)
    session[SESSION_KEY] = {"id": subscriber.id, "key": self_service.session_key(subscriber)}
    security.session_started("cabinet")


def _end_session() -> None:
    for key in [k for k in session if k == SESSION_KEY or k.startswith("cabinet_")]:
        session.pop(key)
    security.session_ended("cabinet")


# idle timeout and absolute lifetime (portal/security.py) apply to the cabinet's session too
security.session_area("cabinet", lambda: SESSION_KEY in session, _end_session)


def current_subscriber() -> Subscriber | None:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    return self_service.session_subscriber(data.get("id"), data.get("key"))


def _safe_next(target: str | None) -> str | None:
    """Only a path inside the cabinet (no scheme, no host, no control characters) is followed
    after the login."""
    if unsafe_redirect_target(target):
        return None
    if target and target.startswith(bp.url_prefix + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def subscriber_required(view):
    """Logged-in subscribers only (in ``g.subscriber``); others go to the cabinet login."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        g.subscriber = current_subscriber()
        if g.subscriber is None:
            if session.get(SESSION_KEY):
                _end_session()  # stale: the password changed elsewhere, or the login was removed
            target = url_for("cabinet.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
            if is_htmx():
                response = make_response("", 204)
                response.headers["HX-Redirect"] = target
                return response
            return redirect(target)
        return view(*args, **kwargs)
    return wrapped


def _own(finder, ident: int):
    try:
        return finder(g.subscriber, ident)
    except NotFound:
        abort(404)


@bp.errorhandler(404)
def not_found(error):
    """A foreign or unknown id: the 404 page, in the cabinet's layout when logged in."""
    return render_template("cabinet/404.html", subscriber=g.get("subscriber")), 404


@bp.before_request
def _remember_language():
    """The cabinet's RU/EN switch is the subscriber's language: their messages follow it."""
    lang = request.args.get("lang")
    if lang in ("ru", "en") and (subscriber := current_subscriber()) is not None and subscriber.language != lang:
        directory.set_language(subscriber.id, lang)
        db.session.commit()


@bp.context_processor
def cabinet_context():
    return {"subscriber": g.get("subscriber")}


# -- logging in and out -------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    """Subscribers log in with their cabinet login and password."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET" and current_subscriber() is not None:
        return redirect(next_url or url_for("cabinet.home"))
    login_name = request.form.get("login", "").strip()
    if request.method == "POST":
        address = request.remote_addr or "-"
        wait = login_limits.before_attempt(LIMIT_SCOPE, login_name, address)
        if wait:
            flash(_("Too many failed attempts. Try again in %(minutes)d min.", minutes=-(-wait // 60)), "error")
            return render_template("cabinet/login.html", login=login_name, next=next_url), 429, \
                {"Retry-After": str(wait)}
        subscriber = self_service.authenticate(login_name, request.form.get("password", ""))
        if subscriber is not None:
            login_limits.record_success(LIMIT_SCOPE, login_name, address)
            _start_session(subscriber)
            session.setdefault("lang", subscriber.language)  # their language, unless picked on this page
            return redirect(next_url or url_for("cabinet.home"))
        login_limits.record_failure(LIMIT_SCOPE, login_name, address)
        flash(_("Wrong login or password."), "error")
    return render_template("cabinet/login.html", login=login_name, next=next_url)


@bp.route("/logout", methods=["POST"])
def logout():
    """Log out: every session of this subscriber ends, copies of this cookie included."""
    subscriber = current_subscriber()
    if subscriber is not None:
        self_service.end_sessions(subscriber)
        db.session.commit()
    _end_session()
    flash(_("You have logged out."), "ok")
    return redirect(url_for("cabinet.login"))


# -- pages --------------------------------------------------------------------------------------

@bp.route("/")
@subscriber_required
def home():
    """Each contract with its balance, and its accounts with their state, tariff and prices."""
    contracts = db.session.scalars(
        db.select(Contract).where(Contract.subscriber_id == g.subscriber.id).order_by(Contract.id)
        .options(selectinload(Contract.accounts).selectinload(Account.services),
                 selectinload(Contract.accounts).selectinload(Account.tariff),
                 selectinload(Contract.accounts).selectinload(Account.multi_tariffs))
    ).all()
    return render_template("cabinet/home.html", contracts=contracts, ss=self_service)


@bp.route("/contracts/<int:contract_id>")
@subscriber_required
def contract(contract_id: int):
    """The contract's ledger with the running balance, newest first; HTMX asks for more rows."""
    contract = _own(self_service.own_contract, contract_id)
    page = ledger.ledger_page(contract, before=int_arg("before"), limit=LEDGER_PAGE)
    return page_or_fragment("cabinet/contract.html", "cabinet/_ledger_rows.html",
                            contract=contract, page=page, ss=self_service)


@bp.route("/accounts/<int:account_id>")
@subscriber_required
def account(account_id: int):
    account = _own(self_service.own_account, account_id)
    return render_template("cabinet/account.html", account=account, ss=self_service)


def _account_action(account_id: int, action, done: str):
    """Block or unblock: the status panel again (HTMX) with a toast, or the page with a flash."""
    account = _own(self_service.own_account, account_id)
    errors, status = {}, 200
    try:
        action(g.subscriber, account)
        db.session.commit()
    except BillingError as error:
        db.session.rollback()
        errors, status = error_fields(error), 409
    message = next(iter(errors.values()), done)
    if is_htmx():
        body = render_template("cabinet/_account_status.html", account=account, ss=self_service, errors=errors)
        return with_toast(body, message, status)
    flash(message, "error" if errors else "ok")
    return redirect(url_for("cabinet.account", account_id=account_id))


@bp.route("/accounts/<int:account_id>/block", methods=["POST"])
@subscriber_required
def block_account(account_id: int):
    """The subscriber's own block (reason ``subscriber``)."""
    return _account_action(account_id, self_service.block_own, _("The account is blocked."))


@bp.route("/accounts/<int:account_id>/unblock", methods=["POST"])
@subscriber_required
def unblock_account(account_id: int):
    """Lift the subscriber's own block; a balance or a manager's block stays."""
    return _account_action(account_id, self_service.unblock_own, _("Your block is lifted."))


@bp.route("/password", methods=["GET", "POST"])
@subscriber_required
def change_password():
    """Old password, new one twice. Wrong old passwords count as failed logins (rate limited)."""
    errors, status = {}, 200
    if request.method == "POST":
        subscriber, address = g.subscriber, request.remote_addr or "-"
        wait = login_limits.before_attempt(LIMIT_SCOPE, subscriber.cabinet_login, address)
        if wait:
            errors = {"old_password": _("Too many failed attempts. Try again in %(minutes)d min.",
                                        minutes=-(-wait // 60))}
            return render_template("cabinet/password.html", errors=errors), 429
        try:
            self_service.change_password(subscriber, request.form.get("old_password", ""),
                                         request.form.get("new_password", ""),
                                         request.form.get("repeat_password", ""))
        except BillingError as error:
            db.session.rollback()
            if error.fields.get("old_password") == "wrong password":
                login_limits.record_failure(LIMIT_SCOPE, subscriber.cabinet_login, address)
            errors, status = error_fields(error), 422
        else:
            db.session.commit()
            _start_session(subscriber)  # this session stays valid; the others end
            flash(_("The password is changed. Other devices will have to log in again."), "ok")
            return redirect(url_for("cabinet.home"))
    return render_template("cabinet/password.html", errors=errors), status
