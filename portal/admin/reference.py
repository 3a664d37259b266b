"""Reference data: agents, catalog services, tariffs, extra-field definitions, platform
connections, staff users and API tokens."""
from __future__ import annotations

from flask import render_template

from . import bp
from .auth import staff_required


def _todo(title):
    return render_template("admin/placeholder.html", title=title)


@bp.route("/agents")
@staff_required()
def agents():
    return _todo("agents")


@bp.route("/services")
@staff_required()
def services():
    return _todo("services")


@bp.route("/tariffs")
@staff_required()
def tariffs():
    return _todo("tariffs")


@bp.route("/extra-fields")
@staff_required()
def extra_fields():
    return _todo("extra fields")


@bp.route("/connections")
@staff_required()
def connections():
    return _todo("connections")


@bp.route("/staff")
@staff_required("admin")
def staff_users():
    return _todo("staff")


@bp.route("/api-tokens")
@staff_required("admin")
def api_tokens():
    return _todo("tokens")
