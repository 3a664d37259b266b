"""Who may do what in the admin interface: staff log in; roles limit the actions."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from ..extensions import db

# admin: everything; manager: subscribers, accounts, payments; viewer: read only
WRITERS = ("admin", "manager")


def actor() -> str:
    """Who the audit log names for what the logged-in staff member does."""
    return f"staff:{current_user.login}"


def staff_required(*roles: str):
    """Log-in required; with roles, only those may act (others get the 403 page)."""
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if roles and current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


def end_sessions(user, actor: str | None = None) -> None:
    """End every session of ``user``: their session key changes (``StaffUser.get_id``), so
    each cookie that carries the old one is refused from its next request on. Audited when
    someone else (an admin) does it."""
    from ..billing import audit

    user.session_version = (user.session_version or 0) + 1
    db.session.flush()
    if actor:
        audit.record(actor, "staff.end_sessions", user, user.login)
