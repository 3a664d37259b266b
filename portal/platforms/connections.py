"""Platform connections: where a platform is and how to log in. The password is encrypted at
rest (portal.billing.crypto), write-only: it is decrypted only to build a client and never
shown, logged or put in the audit log."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import literal_column, select

from ..billing import audit
from ..billing.crypto import decrypt, encrypt
from ..billing.errors import BillingError
from ..db_setup import driver_first
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


@dataclass(frozen=True)
class Stored:
    """A platform's stored connection row, enabled or not, with the password decrypted (kept
    out of repr), and ``derived``: what a caller built from it (parsed settings), memoised with
    the row so that it is rebuilt exactly when the row changes."""

    id: int
    kind: str
    url: str
    enabled: bool
    login: str | None
    password: str = field(repr=False)
    options: dict
    derived: dict = field(default_factory=dict, repr=False, compare=False)


# A per-process copy of each platform's row for callers that read it on every request (the
# upsale callbacks authenticate with it), keyed by the row's version as PostgreSQL keeps it: the
# system column xmin, which every UPDATE of the row changes (a new row version). Checking it is
# one tiny statement in the caller's transaction, so a password changed, a connection disabled,
# an option set by staff is seen by the next request of every process, never later.
_VERSION_SQL = "SELECT id, xmin::text FROM platform_connections WHERE kind = %(kind)s"
_stored: dict[str, tuple[tuple, Stored]] = {}
_stored_lock = threading.Lock()


def current(kind: str) -> Stored | None:
    """The stored connection of a platform as this transaction sees it (enabled or not), or
    None when there is none. On PostgreSQL a row unchanged since this process last read it comes
    from memory; SQLite reads it every time (no row version to check)."""
    conn = db.session.connection()
    if conn.dialect.name != "postgresql":
        row = db.session.scalar(select(PlatformConnection).filter_by(kind=kind))
        return _stored_of(row) if row is not None else None
    found = driver_first(_VERSION_SQL, {"kind": kind})
    if found is None:
        return None
    cached = _stored.get(kind)
    if cached is not None and cached[0] == tuple(found):
        return cached[1]
    # the row and its version in one statement, so that what is kept is what that version holds
    found = db.session.execute(select(PlatformConnection, _xmin).filter_by(kind=kind)).first()
    if found is None:  # deleted meanwhile
        return None
    row, version = found
    stored = _stored_of(row)
    with _stored_lock:
        _stored[kind] = ((row.id, version), stored)
    return stored


_xmin = literal_column("platform_connections.xmin::text").label("version")
_decrypted: dict[str, str] = {}  # password_enc -> password: one decryption per process and password


def _stored_of(row: PlatformConnection) -> Stored:
    password = ""
    if row.password_enc:
        if row.password_enc not in _decrypted:
            if len(_decrypted) >= 16:  # old passwords are forgotten
                _decrypted.clear()
            _decrypted[row.password_enc] = decrypt(row.password_enc)
        password = _decrypted[row.password_enc]
    return Stored(id=row.id, kind=row.kind, url=row.url, enabled=row.enabled, login=row.login,
                  password=password, options=dict(row.options or {}))


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
