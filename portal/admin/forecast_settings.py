"""The low-balance forecast, staff side. The URL map of the area:

    GET  /low-balance      forecast_settings       the warning thresholds (admin)
    POST /low-balance      save_forecast_settings  (admin only)

and ``contract_forecast(contract)``, a template global for the contract page here and the
cabinet's balance block ("enough for N days, until <date>"): billing.forecast's figures.
"""
from __future__ import annotations

from flask import render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..billing import forecast
from ..models import Contract
from ..web import form_text
from . import bp
from .auth import actor, staff_required
from .pages import attempt, form_bool

# Billing's field messages, listed so that pybabel puts them in the catalog.
MESSAGES = [_l("whole numbers of days, separated by commas"), _l("each from 1 to 31 days"),
            _l("each day only once"), _l("at most 5 thresholds")]


def contract_forecast(contract: Contract) -> forecast.Forecast | None:
    """When the contract's money runs out (None: not within two months, no charges, or never
    blocked)."""
    return forecast.forecast([contract.id]).get(contract.id)


bp.add_app_template_global(contract_forecast, "contract_forecast")


def _page(errors: dict | None = None):
    row = forecast.settings()
    return render_template("admin/forecast_settings.html", row=row, thresholds=forecast.thresholds_of(row),
                           errors=errors or {}, values=request.form if errors else None,
                           max_threshold=forecast.MAX_THRESHOLD)


@bp.route("/low-balance")
@staff_required("admin")
def forecast_settings():
    """At how many days left subscribers are warned that their money runs out."""
    return _page()


@bp.route("/low-balance", methods=["POST"])
@staff_required("admin")
def save_forecast_settings():
    def save():
        data = {"enabled": form_bool("enabled"), "thresholds": form_text("thresholds")}
        return forecast.save_settings(data, actor=actor())

    return attempt(save, _("Low-balance warnings saved."),
                   url_for("admin.forecast_settings"), _page)
