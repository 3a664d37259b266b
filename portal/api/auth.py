"""Token authentication and roles for API v1, as small decorators (CTFd style).

A request sends ``Authorization: Bearer <token>``; the token's SHA-256 is looked up among
tokens that are not revoked. Roles rank viewer < manager < admin:

* ``authed_only``: any valid token (viewer and up): reading;
* ``managers_only``: subscribers, contracts, accounts (with their services and actions),
  payments;
* ``admins_only``: reference data (agents, catalog services, tariffs).

Each decorator also documents the bearer scheme and its 401/403 answers in OpenAPI.
"""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import g, request
from flask_smorest import Blueprint, abort
from sqlalchemy import select

from ..extensions import db
from ..models import ApiToken, hash_token, utcnow

RANK = {"viewer": 0, "manager": 1, "admin": 2}
SCHEME = "bearerAuth"
# last_used_at is for humans ("is this token still in use?"): a minute's precision spares a
# write on every request.
TOUCH_EVERY = timedelta(minutes=1)


def actor() -> str:
    """Who the audit log and the ledger name for this request (their columns hold 100)."""
    return f"api:{g.api_token.name}"[:100]


def _authenticate() -> ApiToken:
    scheme, _, plain = request.headers.get("Authorization", "").partition(" ")
    token = None
    if scheme.lower() == "bearer" and plain.strip():
        token = db.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == hash_token(plain.strip()), ApiToken.revoked.is_(False))
        )
    if token is None:
        abort(401, message="a valid API token is required: Authorization: Bearer <token>",
              headers={"WWW-Authenticate": 'Bearer realm="api"'})
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        token.last_used_at = now
        db.session.commit()
    return token


def requires(role: str):
    """Let the request in only with a token of ``role`` or a higher one."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            token = _authenticate()
            if RANK.get(token.role, -1) < RANK[role]:
                abort(403, message=f"this needs a token with the {role} role")
            g.api_token = token
            return view(*args, **kwargs)

        responses = {"401": "UNAUTHORIZED"}
        if role != "viewer":
            responses["403"] = "FORBIDDEN"
        return Blueprint.doc(security=[{SCHEME: []}], responses=responses)(wrapper)

    return decorator


authed_only = requires("viewer")
managers_only = requires("manager")
admins_only = requires("admin")
