"""The history of jobs staff started: who, what, when, about which object, and how it ended.

RQ forgets a job after its result TTL; this row stays. ``portal.admin.jobs.start_job`` writes it
(committed before the job is enqueued, so the job always finds it) and the job's RQ callbacks
(``jobs.history``) write the outcome, also when a worker died under it (RQ's cleanup of
abandoned jobs calls the failure callback). A row still ``started`` whose RQ job is gone ended
without telling: the jobs page shows it as ``lost`` and writes that down.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, update
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, one_of, utcnow

JOB_STATUSES = ("started", "finished", "failed", "lost")


class JobRun(db.Model):
    __tablename__ = "job_runs"
    __table_args__ = (
        one_of("status", JOB_STATUSES),
        # the "lost" check looks at the unfinished rows only
        Index("ix_job_runs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # the RQ job id; not unique: a job with a fixed id (the full reconcile) runs again under it
    job_id: Mapped[str] = mapped_column(String(100), index=True)
    func: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    # "staff:<login>", as the audit log names people
    actor: Mapped[str] = mapped_column(String(100))
    # what it concerned (portal.admin.tasks.OBJECT_LINKS makes the link), if one object
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="started")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(String(500))
    # the exception's last line (a traceback stays in RQ while it keeps the job)
    error: Mapped[str | None] = mapped_column(Text)


def end_job_run(job_id: str, status: str, *, result: str | None = None, error: str | None = None) -> int:
    """Write how the job ``job_id`` ended on its rows still ``started`` (a row already ended
    keeps its outcome, so a late or repeated report changes nothing). Returns rows changed;
    the caller commits."""
    return db.session.execute(
        update(JobRun).where(JobRun.job_id == job_id, JobRun.status == "started")
        .values(status=status, finished_at=utcnow(), result=(result or None) and result[:500], error=error)
        .execution_options(synchronize_session=False)).rowcount
