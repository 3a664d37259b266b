"""Recording changes in the audit log (who, what, before, after)."""
from __future__ import annotations

from ..extensions import db
from ..models import AuditEntry


def record(actor: str, action: str, obj, summary: str = "", before: dict | None = None,
           after: dict | None = None, object_type: str | None = None, object_id: int | None = None) -> None:
    """Add one audit entry to the session; ``obj`` is a model instance or None."""
    db.session.add(AuditEntry(
        actor=actor or "system",
        action=action,
        object_type=object_type or (obj.__tablename__.rstrip("s") if obj is not None else "system"),
        object_id=object_id if object_id is not None else getattr(obj, "id", None),
        summary=summary[:500],
        before=before,
        after=after,
    ))
