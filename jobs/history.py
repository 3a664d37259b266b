"""RQ callbacks that write how a job staff started ended into its history row
(portal/models/jobs.py). ``portal.admin.jobs.start_job`` attaches them to every such job.

RQ runs them in the worker after the job: ``finished`` after it returned, ``failed`` after it
raised or timed out, and also when a worker died under the job (its cleanup of abandoned jobs
calls the failure callback); ``stopped`` when staff stopped it. A callback that cannot write
(the database is away) only logs: RQ would otherwise fail a job that did its work, and the jobs
page takes the outcome from RQ later (``portal.admin.jobs.settle_unfinished``).
"""
from __future__ import annotations

import logging
from functools import wraps

from portal.extensions import db
from portal.models.jobs import end_job_run

from . import in_app_context

log = logging.getLogger(__name__)


def _quiet(callback):
    @wraps(callback)
    def wrapper(job, *args, **kwargs):
        try:
            callback(job, *args, **kwargs)
        except Exception:  # noqa: BLE001  (see the module docstring)
            log.exception("job %s: its history row could not be written", job.id)
    return wrapper


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@_quiet
@in_app_context
def finished(job, connection, result, *args, **kwargs) -> None:
    text = (job.meta or {}).get("result")
    if text is None and result is not None:
        text = str(result)
    end_job_run(job.id, "finished", result=None if text is None else str(text))
    db.session.commit()


@_quiet
@in_app_context
def failed(job, connection, exc_type, exc_value, traceback) -> None:
    name = getattr(exc_type, "__name__", "error")
    error = _last_line(f"{name}: {exc_value}" if str(exc_value) else name)
    end_job_run(job.id, "failed", error=error)
    db.session.commit()


@_quiet
@in_app_context
def stopped(job, connection) -> None:
    end_job_run(job.id, "failed", error="stopped")
    db.session.commit()
