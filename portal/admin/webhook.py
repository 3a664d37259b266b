"""The webhook's staff view: the connection check (the connections page's "Check" button;
the webhook has no page of its own). The check is a job (jobs/webhook.py): the web process
never calls the platform::

    POST /webhook/check              start the check (job); answers a row that polls
    GET  /webhook/check/<job_id>     how it went (polled)
"""
from __future__ import annotations

from flask import render_template

from . import bp
from .auth import WRITERS, actor, staff_required
from .jobs import job_view, start_job


def check_view(job_id: str | None) -> dict:
    """The check's row: the shared job view (portal/admin/jobs.py), drawn as its answer."""
    view = job_view(job_id)
    running = ("queued", "started", "unavailable") if job_id else ("queued", "started")
    state = "running" if view["state"] in running else {"missing": "gone"}.get(view["state"], view["state"])
    return {"state": state, "outcome": view.get("value"), "error": view.get("error")}


@bp.route("/webhook/check", methods=["POST"])
@staff_required(*WRITERS)
def webhook_check():
    """Check the connection (a job): does the receiver take a document?"""
    job_id = start_job("jobs.webhook.check", actor(), timeout=120)
    return render_template("admin/webhook/_check.html", job_id=job_id, **check_view(job_id))


@bp.route("/webhook/check/<job_id>")
@staff_required()
def webhook_check_progress(job_id: str):
    """How did the connection check go? (Polled.)"""
    return render_template("admin/webhook/_check.html", job_id=job_id, **check_view(job_id))
