"""Staff login and the dashboard (the rest of the staff interface grows here)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_user, logout_user

from .. import login_limits
from ..billing import stats
from ..extensions import db, login_manager
from ..models import StaffUser
from ..queue import jobs_waiting
from . import bp
from .auth import staff_required


@login_manager.user_loader
def load_user(user_id: str):
    kind, _sep, ident = user_id.partition(":")
    if kind == "staff" and ident.isdigit():
        user = db.session.get(StaffUser, int(ident))
        return user if user and user.is_enabled else None
    return None


login_manager.login_view = "admin.login"


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Staff log in with their login and password."""
    if request.method == "POST":
        login_name = request.form.get("login", "").strip()
        address = request.remote_addr or "-"
        wait = login_limits.wait_seconds("staff", login_name, address)
        if wait:
            flash(_("Too many failed attempts. Try again in %(minutes)d min.", minutes=-(-wait // 60)), "error")
            return render_template("admin/login.html"), 429
        user = db.session.scalar(db.select(StaffUser).filter_by(login=login_name))
        if user and user.is_enabled and user.check_password(request.form.get("password", "")):
            login_limits.record_success("staff", login_name, address)
            login_user(user)
            return redirect(url_for("admin.home"))
        login_limits.record_failure("staff", login_name, address)
        flash(_("Wrong login or password."), "error")
    return render_template("admin/login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect(url_for("admin.login"))


@bp.route("/")
@staff_required()
def home():
    """The dashboard: counts, today's money, negative balances, jobs, 30 days of money."""
    return render_template("admin/dashboard.html", figures=stats.dashboard(), jobs_waiting=jobs_waiting())
