"""One error shape for every API v1 answer that is not a success, and the transaction rule
of API writes.

Every error is ``{"code": 422, "status": "Unprocessable Entity", "message": "...",
"errors": {"field": "message", ...}}``; ``errors`` is flat (nested fields are dotted:
``extra.isvyaz_login``, ``phones.0``; ``_`` is about the request as a whole) and appears when
particular fields are at fault. Schema errors (marshmallow/webargs) and billing errors
(``BillingError.fields``) come out the same, so a client handles one shape.
"""
from __future__ import annotations

from contextlib import contextmanager
from http import HTTPStatus

from flask import jsonify
from flask_smorest import abort
from sqlalchemy.exc import DataError, IntegrityError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from ..billing.errors import BillingError, NotFound
from ..extensions import db

# smorest's name for the 422 response component (it follows the Python version's HTTPStatus)
INVALID = HTTPStatus(422).name
# Key under which a Body schema leaves its messages in the loaded data (see common.Body).
SCHEMA_ERRORS = "__schema_errors__"

ERROR_DOC = {
    "type": "object",
    "description": "Every API v1 error. `errors` names each bad field (dotted for nested fields, "
                   "`_` for the request as a whole) with a message; schema and billing errors "
                   "share this shape.",
    "properties": {
        "code": {"type": "integer", "description": "HTTP status code"},
        "status": {"type": "string", "description": "HTTP status name"},
        "message": {"type": "string", "description": "What went wrong, for a human"},
        "errors": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "field -> message"},
    },
    "required": ["code", "status"],
    "additionalProperties": False,
}


def flatten(messages, prefix: str = "") -> dict[str, str]:
    """marshmallow messages ({"phones": {0: ["Bad."]}, "_schema": [...]}) -> {"phones.0": "Bad."}."""
    if not isinstance(messages, dict):
        text = " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        return {prefix.rstrip(".") or "_": text}
    out: dict[str, str] = {}
    for key, value in messages.items():
        name = (prefix.rstrip(".") or "_") if key == "_schema" else f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out.update(flatten(value, name))
    return out


def json_error(code: int, message: str, errors: dict | None = None, headers: dict | None = None):
    """The one error answer: {"code", "status", "message"[, "errors"]}."""
    payload = {"code": code, "status": HTTP_STATUS_CODES[code], "message": message}
    if errors:
        payload["errors"] = errors
    return jsonify(payload), code, headers or {}


def error_response(error: HTTPException):
    """The JSON answer for an HTTP error raised anywhere under /api/v1."""
    data = getattr(error, "data", None) or {}
    errors = data.get("errors")
    if not errors and data.get("messages"):
        # webargs: {"json": {...}, "query": {...}}; the location adds nothing for a client
        errors = {k: v for msgs in data["messages"].values() for k, v in flatten(msgs).items()}
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}  # e.g. Allow
    headers.update(data.get("headers") or {})
    message = data.get("message") or (error.description or "").split(". ")[0].rstrip(".")
    return json_error(error.code, message, errors, headers)


def billing_error_response(error: BillingError):
    """A BillingError that escaped a view (outside ``committing``): roll back, answer 404 or 422."""
    db.session.rollback()
    if isinstance(error, NotFound):
        return json_error(404, "not found", error.fields)
    return json_error(422, "invalid input", error.fields)


@contextmanager
def committing(data: dict | None = None, conflicts: tuple[str, ...] = ()):
    """Run billing code; commit what it did, or roll everything back and answer the error.

    ``data`` is the loaded request body: when its schema found errors, the block still runs on
    the fields that did load, so billing's objections to the others are named in the same 422,
    and then nothing is committed. A BillingError naming a field in ``conflicts``, or only
    values already taken, is a 409.
    """
    schema_errors = data.pop(SCHEMA_ERRORS, None) if data else None
    try:
        yield
        if not schema_errors:
            db.session.commit()
            return
    except HTTPException:
        db.session.rollback()
        raise
    except BillingError as e:
        db.session.rollback()
        if not schema_errors and isinstance(e, NotFound):
            abort(404, message="not found", errors=e.fields)
        if not schema_errors and set(e.fields) & set(conflicts):
            abort(409, message="conflicts with an earlier request", errors=e.fields)
        if not schema_errors and set(e.fields.values()) == {"already taken"}:
            # a unique value another row holds: a conflict with existing data, not bad input
            abort(409, message="conflicts with existing data (a unique value is taken)", errors=e.fields)
        # the schema's message wins for a field both found fault with: it is about the type
        abort(422, message="invalid input", errors={**e.fields, **(schema_errors or {})})
    except DataError:
        # a value the billing checks let through does not fit its column (PostgreSQL refuses it)
        db.session.rollback()
        abort(422, message="invalid input",
              errors={"_": "a value is too long or out of range", **(schema_errors or {})})
    except IntegrityError:
        # billing checks uniqueness before writing; what still collides is a parallel request
        # that won the race (or a case the check missed): a conflict, not a server error
        db.session.rollback()
        abort(409, message="conflicts with existing data (a unique value is taken)")
    db.session.rollback()
    abort(422, message="invalid input", errors=schema_errors)


def refuse_bodyless_patch():
    """(before_request) A PATCH under /api/v1 must carry a JSON object: with an empty or
    non-JSON body the schema would load ``{}`` and the view would "change" nothing while
    writing an audit row and outbox rows. 422 instead, before any view runs."""
    from flask import request

    from . import PREFIX

    if request.method != "PATCH" or not request.path.startswith(PREFIX + "/") or request.endpoint is None:
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body:
        return json_error(422, "invalid input", {"_": "a JSON object with the fields to change is required"})
    return None
