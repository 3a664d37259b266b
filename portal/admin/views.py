"""Staff login and the dashboard (the rest of the staff interface grows here)."""
from __future__ import annotations

import hmac

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user

from .. import login_limits, security
from ..billing import stats
from ..extensions import db, login_manager
from ..models import StaffUser
from ..models.staff import check_password_or_dummy
from ..queue import jobs_waiting
from ..web import is_htmx
from . import bp
from .auth import actor, end_sessions, staff_required

LIMIT_SCOPE = "staff"
LOGIN_MAX = StaffUser.__table__.c.login.type.length


@login_manager.user_loader
def load_user(user_id: str):
    """The staff user of a session, if its key still matches: a new password, a logout or an
    admin's "end sessions" changes the key, and every session made before is refused."""
    kind, _sep, rest = user_id.partition(":")
    ident, _sep, key = rest.partition(":")
    if kind == "staff" and ident.isascii() and ident.isdigit() and len(ident) < 19:
        user = db.session.get(StaffUser, int(ident))
        if user and user.is_enabled and key and hmac.compare_digest(key, user.session_key()):
            return user
    return None


login_manager.login_view = "admin.login"
login_manager.login_message = _l("Please log in to open this page.")  # (flask-login's own is English only)
security.session_area("staff", lambda: "_user_id" in session, logout_user)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Staff log in with their login and password (limits: portal/login_limits.py)."""
    if request.method == "POST":
        login_name = request.form.get("login", "").strip()
        password = request.form.get("password", "")
        address = request.remote_addr or "-"
        wait = login_limits.before_attempt(LIMIT_SCOPE, login_name, address)
        if wait:
            flash(_("Too many failed attempts. Try again in %(minutes)d min.", minutes=-(-wait // 60)), "error")
            return render_template("admin/login.html"), 429, {"Retry-After": str(wait)}
        user = None
        if len(login_name) <= LOGIN_MAX and "\x00" not in login_name:
            user = db.session.scalar(db.select(StaffUser).filter_by(login=login_name))
        # an unknown or disabled login checks a dummy hash: the same work and time as a known one
        known = user is not None and user.is_enabled
        if check_password_or_dummy(user.password_hash if known else None, password):
            login_limits.record_success(LIMIT_SCOPE, login_name, address)
            login_user(user)
            security.session_started("staff")
            return redirect(url_for("admin.home"))
        login_limits.record_failure(LIMIT_SCOPE, login_name, address)
        flash(_("Wrong login or password."), "error")
        return render_template("admin/login.html")
    return render_template("admin/login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    """Log out: every session of this user ends, also a copy of this cookie (a cookie session
    has no server-side id to end alone, so logging out ends the user's other devices too)."""
    if current_user.is_authenticated:
        end_sessions(current_user)
        db.session.commit()
    logout_user()
    security.session_ended("staff")
    return redirect(url_for("admin.login"))


@bp.route("/staff/<int:ident>/sessions", methods=["POST"])
@staff_required("admin")
def end_staff_sessions(ident: int):
    """An admin ends every session of a staff member (a lost laptop, a copied cookie); for
    themselves, this one stays."""
    user = db.session.get(StaffUser, ident) or abort(404)
    end_sessions(user, actor=actor())
    db.session.commit()
    if user.id == current_user.id:
        login_user(user)  # the new key: this browser stays logged in
    flash(_("Every session of %(login)s has ended.", login=user.login), "ok")
    target = url_for("admin.staff_user", ident=user.id)
    if is_htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target, 303)


@bp.route("/")
@staff_required()
def home():
    """The dashboard: counts, today's money, negative balances, jobs, 30 days of money."""
    from datetime import date

    from flask_babel import format_date

    figures = stats.dashboard()
    for row in figures["chart"]:  # the chart's day labels in the page's language ("4 нояб.", "Nov 4")
        row["label"] = format_date(date.fromisoformat(row["day"]), "d MMM")
    return render_template("admin/dashboard.html", figures=figures, jobs_waiting=jobs_waiting())
