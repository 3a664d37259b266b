"""Tasks for departments: generic (any platform may open one), deduplicated by a key while
open. The caller commits."""
from __future__ import annotations

from sqlalchemy import select

from ...billing import audit
from ...extensions import db
from ...models import Task, utcnow


def open_task(key: str, title: str, *, department_id: int | None, body: str | None = None,
              object_type: str | None = None, object_id: int | None = None) -> Task:
    """Open a task, or return the open one with this key (its text refreshed)."""
    task = db.session.scalar(select(Task).filter_by(key=key))
    if task is not None and task.state == "open":
        task.body = body
        return task
    if task is not None:  # closed earlier: the same problem again is a new task
        task.key = f"{key}#closed{task.id}"
        db.session.flush()
    task = Task(key=key, title=title[:300], body=body, department_id=department_id, state="open",
                object_type=object_type, object_id=object_id)
    db.session.add(task)
    db.session.flush()
    audit.record("system", "task.open", task, title)
    return task


def close_task(task: Task, *, actor: str) -> None:
    if task.state == "done":
        return
    task.state, task.closed_at, task.closed_by = "done", utcnow(), actor
    audit.record(actor, "task.close", task, task.title)


def close_by_key(key: str, *, actor: str = "system") -> None:
    task = db.session.scalar(select(Task).filter_by(key=key, state="open"))
    if task is not None:
        close_task(task, actor=actor)
