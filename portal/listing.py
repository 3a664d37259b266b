"""Keyset pages with search, shared by the API lists and the admin tables.

A page is the rows after a given id, plus one row more to tell whether there is a next page:
no COUNT(*) and no OFFSET, so a page costs the same at row 10 and at row 1,000,000.
"""
from __future__ import annotations

from sqlalchemy import or_

from .extensions import db


def paginate(query, model, args: dict, search=()) -> dict:
    """One keyset page of ``query`` (a select of ``model``), optionally searched in ``search``.
    ``args``: q (text), after (id or None), limit."""
    q = (args.get("q") or "").strip()
    if q and search:
        query = query.where(or_(*(col.icontains(q, autoescape=True) for col in search)))
    if args.get("after") is not None:
        query = query.where(model.id > args["after"])
    limit = args["limit"]
    rows = db.session.scalars(query.order_by(model.id).limit(limit + 1)).all()
    items = rows[:limit]
    return {"items": items, "next_after": items[-1].id if len(rows) > limit else None}
