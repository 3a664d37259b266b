"""Recording changes in the audit log (who, what, before, after)."""
from __future__ import annotations

from sqlalchemy import bindparam, insert

from ..extensions import db
from ..models import AuditEntry, utcnow
from . import driver_sql

_table = AuditEntry.__table__
# one entry's plain INSERT, built once, every column but the id bound (also blocking's rows)
INSERT = insert(_table).values({c.name: bindparam(c.name, type_=c.type) for c in _table.c if c.name != "id"})


def record(actor: str, action: str, obj, summary: str = "", before: dict | None = None,
           after: dict | None = None, object_type: str | None = None, object_id: int | None = None) -> None:
    """Write one audit entry in the session's transaction; ``obj`` is a model instance or None.
    (A plain INSERT: entries are never read back as objects, and the ORM's unit of work for
    them was a good part of a small change's cost; run by the driver on PostgreSQL: driver_sql.)"""
    driver_sql.rows(INSERT, dict(
        at=utcnow(),
        actor=actor or "system",
        action=action,
        object_type=object_type or (obj.__tablename__.rstrip("s") if obj is not None else "system"),
        object_id=object_id if object_id is not None else getattr(obj, "id", None),
        summary=summary[:500],
        before=before,
        after=after,
    ))


def record_many(entries: list[dict]) -> None:
    """Many entries in one INSERT (a batch posting): dicts of actor, action, object_type,
    object_id, summary, after."""
    if entries:  # executemany: batched into multi-row INSERTs with one compiled statement
        now = utcnow()
        db.session.execute(insert(AuditEntry.__table__), [
            dict(at=now, before=None, **{**e, "actor": e["actor"] or "system", "summary": e["summary"][:500]})
            for e in entries])
