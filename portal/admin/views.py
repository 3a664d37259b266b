"""Staff login and the dashboard (the rest of the staff interface grows here)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_user, logout_user

from .. import login_limits
from ..billing import stats
from ..extensions import db, login_manager
from ..listing import paginate
from ..models import StaffUser, Subscriber
from ..queue import jobs_waiting
from .auth import staff_required

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


def page_or_rows(page_template: str, rows_template: str, **context):
    """The whole page, or only the table rows for an HTMX request (search, next page)."""
    return render_template(rows_template if request.headers.get("HX-Request") else page_template, **context)


def list_args(limit: int = 50) -> dict:
    after = request.args.get("after", "")
    return {"q": request.args.get("q", ""), "after": int(after) if after.isdigit() else None, "limit": limit}


@bp.route("/subscribers")
@staff_required()
def subscribers():
    """Subscribers, searched as you type, a page at a time (keyset: fast at a million rows)."""
    args = list_args()
    page = paginate(db.select(Subscriber), Subscriber, args,
                    search=(Subscriber.full_name, Subscriber.email, Subscriber.cabinet_login))
    return page_or_rows("admin/subscribers.html", "admin/_subscribers_rows.html", page=page, q=args["q"])
