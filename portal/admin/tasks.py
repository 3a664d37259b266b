"""Tasks for departments: what a person must look at (a short seller balance, an order whose
outcome is unknown, a service deleted on a platform), with the department, the state and a
link to the object. Generic: any platform opens tasks (portal.platforms.billmanager.tasks)
and adds a link for its object type to ``OBJECT_LINKS``.

    GET  /tasks?state=open|done|all&department=<id>   the list (newest first, 200 at most)
    POST /tasks/<id>/close                            mark done (admin, manager)
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..extensions import db
from ..models import Department, Task
from ..platforms.billmanager.tasks import close_task
from . import bp
from .auth import WRITERS, actor, staff_required

# object_type -> its page's URL from its id (tasks and the job history link their object)
OBJECT_LINKS = {
    "bm_service": lambda i: url_for("admin.bm_services", _anchor=f"svc-{i}"),
    "bm_handler": lambda i: url_for("admin.bm_handler", handler_id=i),
    "bm_tariff": lambda i: url_for("admin.bm_tariff", tariff_id=i),
    "account": lambda i: url_for("admin.account", account_id=i),
}
OBJECT_TITLES = {"bm_service": _l("resold service"), "bm_handler": _l("service handler"),
                 "bm_tariff": _l("resold tariff"), "account": _l("account")}


def link_to(object_type: str | None, object_id: int | None) -> str | None:
    make = OBJECT_LINKS.get(object_type or "")
    return make(object_id) if make and object_id is not None else None


def object_link(task: Task) -> str | None:
    return link_to(task.object_type, task.object_id)


@bp.route("/tasks")
@staff_required()
def tasks():
    """Open tasks first; filter by state and department."""
    state = request.args.get("state", "open")
    department = request.args.get("department", type=int)
    q = select(Task)
    if state in ("open", "done"):
        q = q.where(Task.state == state)
    if department:
        q = q.where(Task.department_id == department)
    items = db.session.scalars(q.order_by(Task.id.desc()).limit(200)).all()
    return render_template("admin/tasks.html", items=items, state=state, department=department,
                           departments=db.session.scalars(select(Department).order_by(Department.name)).all(),
                           object_link=object_link, object_titles=OBJECT_TITLES, nav_section="admin.bm_handlers")


@bp.route("/tasks/<int:task_id>/close", methods=["POST"])
@staff_required(*WRITERS)
def close_task_view(task_id: int):
    task = db.session.get(Task, task_id) or abort(404)
    close_task(task, actor=actor())
    db.session.commit()
    flash(_("Task closed."), "ok")
    return redirect(request.referrer if (request.referrer or "").startswith(request.host_url)
                    else url_for("admin.tasks"), 303)
