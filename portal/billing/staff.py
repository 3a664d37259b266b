"""Staff users and API tokens: creating them, changing roles and passwords, disabling,
issuing and revoking tokens. Used by the admin pages and by `flask api-token create`.

Rules: a login is 1-64 latin letters, digits, ``_ . @ -`` and unique; a password has at least
8 characters and is stored hashed; an admin cannot disable or demote themselves (so the
portal is never left without the admin who is acting). Every change is audited; passwords
and plain tokens never reach the audit log.
"""
from __future__ import annotations

import re

from sqlalchemy import func, select

from ..extensions import db
from ..models import ROLES, ApiToken, StaffUser
from . import audit
from .directory import _choice, _raise, _text
from .errors import BillingError

LOGIN_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 8


def _public(user: StaffUser) -> dict:
    return {"login": user.login, "full_name": user.full_name, "role": user.role, "is_enabled": user.is_enabled}


def _password(errors: dict, password, field: str = "password") -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        errors[field] = "at least 8 characters"


def create_staff(data: dict, *, actor: str) -> StaffUser:
    """A new staff user from login, full_name, role and password."""
    login = (data.get("login") or "").strip()
    errors: dict = {}
    if not LOGIN_RE.fullmatch(login):
        errors["login"] = "1-64 latin letters, digits, _ . @ -"
    elif db.session.scalar(select(func.count()).select_from(StaffUser).where(StaffUser.login == login)):
        errors["login"] = "already taken"
    _text(errors, data, "full_name", 200)
    _choice(errors, data, "role", ROLES)
    _password(errors, data.get("password"))
    _raise(errors)
    user = StaffUser(login=login, full_name=(data.get("full_name") or "").strip(), role=data["role"],
                     is_enabled=True)
    user.set_password(data["password"])
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "staff.create", user, user.login, after=_public(user))
    return user


def update_staff(user: StaffUser, data: dict, *, actor: str, acting_user_id: int | None = None) -> StaffUser:
    """Change the full name and the role; an admin cannot take the admin role from themselves."""
    merged = {"full_name": user.full_name, "role": user.role}
    merged.update({k: data[k] for k in ("full_name", "role") if k in data})
    errors: dict = {}
    _text(errors, merged, "full_name", 200)
    _choice(errors, merged, "role", ROLES)
    if user.id == acting_user_id and user.role == "admin" and merged.get("role") != "admin":
        errors["role"] = "you cannot take the admin role from yourself"
    _raise(errors)
    before = _public(user)
    user.full_name = (merged.get("full_name") or "").strip()
    user.role = merged["role"]
    db.session.flush()
    audit.record(actor, "staff.update", user, user.login, before=before, after=_public(user))
    return user


def set_staff_enabled(user: StaffUser, enabled: bool, *, actor: str, acting_user_id: int | None = None) -> None:
    """Disable (they can no longer log in) or enable a staff user; never oneself."""
    if not enabled and user.id == acting_user_id:
        raise BillingError({"_": "you cannot disable yourself"})
    if user.is_enabled == enabled:
        return
    user.is_enabled = enabled
    db.session.flush()
    audit.record(actor, "staff.enable" if enabled else "staff.disable", user, user.login)


def set_staff_password(user: StaffUser, password, *, actor: str) -> None:
    errors: dict = {}
    _password(errors, password)
    _raise(errors)
    user.set_password(password)
    db.session.flush()
    audit.record(actor, "staff.password", user, user.login)


def issue_token(data: dict, *, actor: str) -> tuple[ApiToken, str]:
    """A new API token from name and role; the plain token is returned once and never stored."""
    data = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
    errors: dict = {}
    _text(errors, data, "name", 100, required=True)
    _choice(errors, data, "role", ROLES)
    _raise(errors)
    token, plain = ApiToken.issue(data["name"], data["role"])
    db.session.add(token)
    db.session.flush()
    audit.record(actor, "api_token.create", token, token.name,
                 after={"name": token.name, "role": token.role, "prefix": token.prefix})
    return token, plain


def revoke_token(token: ApiToken, *, actor: str) -> None:
    """The API refuses a revoked token from the next request on; revoking twice is a no-op."""
    if token.revoked:
        return
    token.revoked = True
    db.session.flush()
    audit.record(actor, "api_token.revoke", token, token.name, after={"prefix": token.prefix})
