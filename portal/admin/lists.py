"""The staff lists: subscribers, contracts, accounts, payments, audit log."""
from __future__ import annotations

from flask import render_template

from ..extensions import db
from ..listing import paginate
from ..models import Subscriber
from ..web import page_or_fragment
from . import bp
from .auth import staff_required


def list_args(limit: int = 50) -> dict:
    from flask import request
    after = request.args.get("after", "")
    return {"q": request.args.get("q", ""), "after": int(after) if after.isdigit() else None, "limit": limit}


@bp.route("/subscribers")
@staff_required()
def subscribers():
    """Subscribers, searched as you type, a page at a time (keyset: fast at a million rows)."""
    args = list_args()
    page = paginate(db.select(Subscriber), Subscriber, args,
                    search=(Subscriber.full_name, Subscriber.email, Subscriber.cabinet_login))
    return page_or_fragment("admin/subscribers.html", "admin/_subscribers_rows.html", page=page, q=args["q"])


for name in ("contracts", "accounts", "payments", "audit"):
    bp.add_url_rule(f"/{name}", name, staff_required()(lambda: render_template("admin/placeholder.html", title="todo")))
