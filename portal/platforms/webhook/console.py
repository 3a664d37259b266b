"""Webhook staff actions (no Flask: the admin view starts them as jobs, jobs/webhook.py)."""
from __future__ import annotations

from ...extensions import db
from .. import connections
from ..http import PlatformError, audit_calls, recording
from .client import WebhookClient

NAME = "webhook"
# the login of the check's document: no account has it (logins start with a letter or digit)
CHECK_LOGIN = "-portal-connection-check"


def check(*, actor: str) -> dict:
    """Does the receiver take our documents? It is sent the departure of a login no account
    has (``{"login": CHECK_LOGIN, "present": false}``), which the protocol makes harmless: a
    receiver keeps the latest document per login. The call goes to the audit log."""
    out = {"reachable": False, "accepted": False, "error": None}
    connection = connections.load(NAME)
    if connection is None:
        out["error"] = "no enabled connection"
        return out
    with recording() as calls:
        try:
            WebhookClient(connection).push({"login": CHECK_LOGIN, "present": False})
            out.update(reachable=True, accepted=True)
        except PlatformError as e:
            out.update(reachable=str(e).startswith("HTTP "), error=str(e))
    db.session.rollback()
    audit_calls(calls, actor)
    db.session.commit()
    return out
