"""API v1: token-authenticated JSON for operators' systems (flask-smorest, OpenAPI at
/api/v1/openapi.json)."""
from __future__ import annotations

from flask import Flask


def register_api(app: Flask) -> None:
    """Register the API v1 blueprints on the smorest Api (and exempt them from CSRF)."""
    from ..extensions import api, csrf
    from . import resources

    for bp in resources.blueprints():
        csrf.exempt(bp)
        api.register_blueprint(bp)
