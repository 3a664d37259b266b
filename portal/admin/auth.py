"""Who may do what in the admin interface: staff log in; roles limit the actions."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

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
