"""Platform connections: where a platform is and how to log in. The password is encrypted at
rest (portal.billing.crypto), write-only: it is decrypted only to build a client and never
shown, logged or put in the audit log."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from ..billing import audit
from ..billing.crypto import decrypt, encrypt
from ..billing.errors import BillingError
from ..extensions import db
from ..models import PlatformConnection
from .registry import known_platforms


@dataclass(frozen=True)
class Connection:
    """What a platform client needs, with the password decrypted (kept out of repr)."""

    kind: str
    url: str
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict = field(default_factory=dict)
    timeout: float = 10.0


def load(kind: str) -> Connection | None:
    """The enabled connection of a platform, or None when there is none."""
    row = db.session.scalar(select(PlatformConnection).filter_by(kind=kind))
    if row is None or not row.enabled:
        return None
    return Connection(kind=row.kind, url=row.url, login=row.login, password=decrypt(row.password_enc),
                      options=dict(row.options or {}), timeout=current_app.config["SYNC_HTTP_TIMEOUT"])


def public(row: PlatformConnection) -> dict:
    """A connection as it may be shown: whether a password is set, never the password."""
    return {"kind": row.kind, "url": row.url, "login": row.login, "password_set": bool(row.password_enc),
            "options": dict(row.options or {}), "enabled": row.enabled}


def save_connection(kind: str, *, url: str, login: str | None = None, password: str | None = None,
                    options: dict | None = None, enabled: bool | None = None, actor: str) -> PlatformConnection:
    """Create or change a platform's connection; the caller commits. ``None`` keeps what is
    stored (login, password, options, enabled); an empty login or password clears it."""
    errors = {}
    if kind not in known_platforms():
        errors["kind"] = f"one of {', '.join(known_platforms())}"
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors["url"] = "an http:// or https:// URL"
    elif parts.username or parts.password:
        errors["url"] = "no credentials in the URL: give the login and the password separately"
    if login is not None and len(login) > 200:
        errors["login"] = "at most 200 characters"
    if errors:
        raise BillingError(errors)
    row = db.session.scalar(select(PlatformConnection).filter_by(kind=kind))
    creating = row is None
    row = row or PlatformConnection(kind=kind, options={}, enabled=True)
    row.url = url
    if login is not None:
        row.login = login or None
    if password is not None:
        row.password_enc = encrypt(password) if password else None
    if options is not None:
        row.options = dict(options)
    if enabled is not None:
        row.enabled = enabled
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "platform.connection.create" if creating else "platform.connection.update", row, kind,
                 after={**public(row), "password_changed": password is not None})
    return row


def list_connections() -> list[dict]:
    return [public(row) for row in db.session.scalars(select(PlatformConnection).order_by(PlatformConnection.kind))]
