"""Jobs: waiting, running, failed and dead, with retry; job progress rows; rq-dashboard."""
from __future__ import annotations

from flask import render_template

from . import bp
from .auth import staff_required


@bp.route("/jobs")
@staff_required()
def jobs():
    return render_template("admin/placeholder.html", title="jobs")


@bp.route("/jobs/<job_id>/progress")
@staff_required()
def job_progress(job_id):
    return ""
