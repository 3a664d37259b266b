"""Staff users (admin interface), API tokens (API v1), and failed logins counted in the
database while Redis is down (``portal/login_limits.py``)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .base import UTCDateTime, one_of, utcnow

ROLES = ("admin", "manager", "viewer")


class StaffUser(UserMixin, db.Model):
    __tablename__ = "staff_users"
    __table_args__ = (one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # raised by logout and by "end sessions": every session cookie issued before is refused
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and a key that a new password or a
        new session version changes, so those end every older session (``load_user``)."""
        return f"staff:{self.id}:{self.session_key()}"

    def session_key(self) -> str:
        return session_fingerprint(self.password_hash, self.session_version)

    def set_password(self, password: str) -> None:
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


def hash_password(password: str) -> str:
    """werkzeug's salted hash by PASSWORD_HASH_METHOD (scrypt; the test suite sets a cheap one,
    as a scrypt hash costs tenths of a second of CPU)."""
    method = current_app.config["PASSWORD_HASH_METHOD"] if has_app_context() else "scrypt"
    return generate_password_hash(password, method=method)


def session_fingerprint(password_hash: str | None, version: int | None) -> str:
    """The key a staff or cabinet session carries: a new password or a new session version
    (logout, "end sessions") changes it, and every session holding the old one is refused."""
    return hashlib.sha256(f"{password_hash or ''}|{version or 0}".encode()).hexdigest()[:24]


_DUMMY_HASH: list[str] = []


def check_password_or_dummy(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``; with no hash (an unknown or password-less
    login) check it against a dummy hash of the same method, so that an unknown login costs
    the same work and time as a known one and the answer time does not tell them apart."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(secrets.token_hex(16)))
    ok = check_password_hash(password_hash or _DUMMY_HASH[0], password or "")
    return ok and bool(password_hash)


class LoginFailure(db.Model):
    """One failed login, written only while Redis cannot be reached; the limits then count
    these rows in their window (rows older than the window are deleted as new ones come)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_scope_at", "scope", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    login: Mapped[str] = mapped_column(String(64))  # lowercased, cut to the column's length
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def hash_token(token: str) -> str:
    """API tokens are random 256-bit strings, so one SHA-256 is enough (no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(db.Model):
    __tablename__ = "api_tokens"
    __table_args__ = (one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(default=False)

    @classmethod
    def issue(cls, name: str, role: str) -> tuple[ApiToken, str]:
        """Create a token row; the plain token is returned once and never stored."""
        plain = "pt_" + secrets.token_urlsafe(32)
        return cls(name=name, role=role, token_hash=hash_token(plain), prefix=plain[:10]), plain
