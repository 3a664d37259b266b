"""Keyset pages with search, shared by the API lists and the admin tables.

A page is the rows after a given id, plus one row more to tell whether there is a next page:
no COUNT(*) and no OFFSET, so a page costs the same at row 10 and at row 1,000,000.
"""
from __future__ import annotations

from sqlalchemy import or_, tuple_

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


# -- sorted keyset pages (admin tables) ------------------------------------------------------

def _cursor_value(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def sorted_page(query, id_col, *, sort_col, parse, desc: bool, after: str | None, limit: int,
                value_of) -> dict:
    """One page of ``query`` ordered by (sort_col, id) in one direction, after the cursor
    ``after`` = "<sort value>|<id>" of the previous page's last row. The sort column must be
    NOT NULL (a row-value comparison skips NULLs). ``parse`` turns the cursor text back into a
    sort value; ``value_of(row)`` reads (sort value, id) off a row for the next cursor."""
    if after:
        text, _sep, last_id = after.rpartition("|")
        try:
            key = (parse(text), int(last_id))
        except (ValueError, ArithmeticError):
            key = None  # a mangled cursor starts from the top rather than failing
        if key is not None:
            row_value = tuple_(sort_col, id_col)
            query = query.where(row_value < key if desc else row_value > key)
    order = (sort_col.desc(), id_col.desc()) if desc else (sort_col, id_col)
    rows = db.session.execute(query.order_by(*order).limit(limit + 1)).all()
    items = rows[:limit]
    next_after = None
    if len(rows) > limit:
        value, ident = value_of(items[-1])
        next_after = f"{_cursor_value(value)}|{ident}"
    return {"items": items, "next_after": next_after}
