"""Staff login and the (for now empty) home page; the full interface comes with issue 3."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import db, login_manager
from ..models import StaffUser

bp = Blueprint("admin", __name__)


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
        user = db.session.scalar(db.select(StaffUser).filter_by(login=login_name))
        if user and user.is_enabled and user.check_password(request.form.get("password", "")):
            login_user(user)
            return redirect(url_for("admin.home"))
        flash(_("Wrong login or password."), "error")
    return render_template("admin/login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect(url_for("admin.login"))


@bp.route("/")
@login_required
def home():
    return render_template("admin/home.html", user=current_user)
