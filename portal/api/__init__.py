"""API v1: token-authenticated JSON for operators' systems (flask-smorest, OpenAPI at
/api/v1/openapi.json), and the HTTP endpoints platforms call back (upsale.py: «Смотрёшка»
upsale v3 at /upsale/v3, in the platform's protocol, outside API v1 and its OpenAPI document).

One module per resource (listed in resources.py); authorization is in auth.py, the error
shape and the commit-or-roll-back rule of writes in errors.py, fields and pagination in
common.py.
"""
from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

PREFIX = "/api/v1"


def register_api(app: Flask) -> None:
    """Register the API v1 blueprints on the smorest Api (and exempt them from CSRF), and the
    platform callbacks beside it."""
    from ..billing.errors import BillingError
    from ..extensions import api, csrf
    from . import resources, upsale
    from .auth import SCHEME
    from .errors import ERROR_DOC, billing_error_response, error_response

    api.spec.components.security_scheme(SCHEME, {"type": "http", "scheme": "bearer"})
    # smorest documents every error with its generic "Error" schema; ours is that shape with
    # `errors` pinned down to field -> message
    api.spec.components.schemas["Error"] = ERROR_DOC
    from . import extra_fields

    for bp in resources.blueprints() + [extra_fields.bp]:
        csrf.exempt(bp)
        if not bp._got_registered_once:  # blueprints are module-level: a second app reuses them
            bp.register_error_handler(BillingError, billing_error_response)
            # JSON errors here, whatever the rest of the app renders for its own pages
            bp.register_error_handler(HTTPException, error_response)
        api.register_blueprint(bp)
    app.register_blueprint(upsale.bp)

    @app.before_request
    def _api_routing_errors():
        """Unknown paths and methods under /api/v1 match no blueprint: answer them in JSON here."""
        exc = request.routing_exception
        if isinstance(exc, (NotFound, MethodNotAllowed)) and request.path.startswith(PREFIX + "/"):
            return error_response(exc)
        return None
