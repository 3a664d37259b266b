"""Keyset pages with search, shared by the API lists and the admin tables.

A page is the rows after a given id, plus one row more to tell whether there is a next page:
no COUNT(*) and no OFFSET, so a page costs the same at row 10 and at row 1,000,000.
"""
from __future__ import annotations

from sqlalchemy import func, or_, select, text, tuple_

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


def _after(id_col, sort_col, parse, desc: bool, after: str | None) -> list:
    """The condition (a list of none or one) of the rows after the cursor ``after`` =
    "<sort value>|<id>"."""
    if after:
        text, _sep, last_id = after.rpartition("|")
        try:
            key = (parse(text), int(last_id))
        except (ValueError, ArithmeticError):
            return []  # a mangled cursor starts from the top rather than failing
        row_value = tuple_(sort_col, id_col)
        return [row_value < key if desc else row_value > key]
    return []


def _keyset(query, id_col, sort_col, parse, desc: bool, after: str | None):
    """``query`` with the rows after the cursor ``after`` = "<sort value>|<id>" only."""
    cursor = _after(id_col, sort_col, parse, desc, after)
    return query.where(*cursor) if cursor else query


def _page(rows, limit: int, value_of, **extra) -> dict:
    items = rows[:limit]
    next_after = None
    if len(rows) > limit:
        value, ident = value_of(items[-1])
        next_after = f"{_cursor_value(value)}|{ident}"
    return {"items": items, "next_after": next_after, **extra}


def sorted_page(query, id_col, *, sort_col, parse, desc: bool, after: str | None, limit: int,
                value_of) -> dict:
    """One page of ``query`` ordered by (sort_col, id) in one direction, after the cursor
    ``after`` = "<sort value>|<id>" of the previous page's last row. The sort column must be
    NOT NULL (a row-value comparison skips NULLs). ``parse`` turns the cursor text back into a
    sort value; ``value_of(row)`` reads (sort value, id) off a row for the next cursor."""
    query = _keyset(query, id_col, sort_col, parse, desc, after)
    order = (sort_col.desc(), id_col.desc()) if desc else (sort_col, id_col)
    return _page(db.session.execute(query.order_by(*order).limit(limit + 1)).all(), limit, value_of)


# -- narrowed pages: a search or a filter, in any order, at a million rows --------------------

# An ordered walk may pass this many rows of the list's order before it gives up: a page of
# matches that are at least ~5% of the rows is found within it (1,000 rows, each with its
# joined rows: 2-10 ms, 20-40 ms on a loaded machine with a cold cache).
WALK_ROWS = 1000
# At most this many matches are sorted in memory (found by the indexes of the search and the
# filters, then sorted: in proportion to the matches, ~2-5 ms per thousand on PostgreSQL) ...
SET_ROWS = 2000
# ... and only when the planner expects finding all the matches to cost less than this (its
# cost units: a rare term costs a few hundred; 12,900 matches of a surname 21,000 and
# ~0.1-0.2 s; a common term's 125,000 rechecked against an unindexed filter 33,000, ~0.5 s).
SET_COST = 6000
# The last resort, a walk that stops after this many rows and continues on "Show more".
LONG_WALK_ROWS = 20000
# A first page in an order other than the id order walks on in that order only if the page is
# expected within this many rows; else it falls back to the id order (step 3). Out of id
# order each walked row is a random read of its table and its joined rows: 5,000 contracts
# by balance with their subscribers, 0.3-0.6 s cold, against ~50 ms in id order.
PICKED_WALK_ROWS = 3000


def _bound(id_col, sort_col, parse, desc: bool, after: str | None, rows: int, start=None):
    """(sort value, id) of the row ``rows`` rows after the cursor (or after the key ``start``)
    in the list's order, over the whole table (an index-only scan of (sort column, id)), or
    None if the table ends first."""
    order = (sort_col.desc(), id_col.desc()) if desc else (sort_col, id_col)
    ahead = select(sort_col, id_col).select_from(id_col.table)
    if start is None:
        ahead = _keyset(ahead, id_col, sort_col, parse, desc, after)
    else:
        ahead = ahead.where(tuple_(sort_col, id_col) < start if desc else tuple_(sort_col, id_col) > start)
    _plan("walk")  # (an index-only scan: never a sort of the whole table)
    found = db.session.execute(ahead.order_by(*order).offset(rows - 1).limit(1)).first()
    return tuple(found) if found is not None else None


# The plan of a bounded walk: the list's order read off its index, each row's joined rows by
# their primary keys. Left to itself, the planner takes a search over joined tables (contracts
# or payments by the subscriber's name) for selective and scans or hashes whole tables: 0.2-0.5
# s, 1.3 s for a walk of 20,000 contracts that hashed every subscriber. (A filter that is a
# semi-join comes in the walk's own shape, a per-row probe: ``Filter.walk`` in admin/lists.py.)
# The few-matches step wants bitmaps of the indexes only.
# JIT is off throughout: the planner costs a bounded walk, a probe or a totals count as if it
# ran to the end, past ``jit_above_cost``, and compiling took longer than running.
_PLANS = {
    "default": {"enable_seqscan": "on", "enable_bitmapscan": "on", "enable_indexscan": "on",
                "enable_hashjoin": "on", "enable_mergejoin": "on"},
    "walk": {"enable_seqscan": "off", "enable_bitmapscan": "off", "enable_indexscan": "on",
             "enable_hashjoin": "off", "enable_mergejoin": "off"},
    "few": {"enable_seqscan": "off", "enable_bitmapscan": "on", "enable_indexscan": "off",
            "enable_hashjoin": "on", "enable_mergejoin": "on"},
}


def _plan(name: str) -> None:
    """The planner settings ``name`` (and no JIT) for the rest of this transaction, PostgreSQL
    only; one statement, and none when they are already in force (each round trip counts: a
    page is a few statements of a few ms). They end with the request's transaction."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    session = db.session()
    conn = session.connection()  # (begins the transaction, if none)
    txn = session.get_transaction()
    current = session.info.get("listing_plan")
    if current is not None and current[0] is txn and current[1] == name:
        return
    settings = {**_PLANS[name], "jit": "off"}
    conn.exec_driver_sql("SELECT " + ", ".join(f"set_config('{k}', '{v}', true)" for k, v in settings.items()))
    session.info["listing_plan"] = (txn, name)


def no_jit() -> None:
    """No JIT for the rest of this transaction (PostgreSQL): see _PLANS."""
    _plan("default")


def _walk(keyed, id_col, sort_col, desc: bool, bound, limit: int, start=None):
    """The matches among the rows after ``start`` (a (sort value, id) key, exclusive; else the
    cursor already in ``keyed``) up to ``bound`` (inclusive; None: to the end), in order.
    ``keyed``: the query, or a function of the walked range's conditions that returns it
    (narrowed_page's ``walk_form``)."""
    order = (sort_col.desc(), id_col.desc()) if desc else (sort_col, id_col)
    edge = tuple_(sort_col, id_col)
    walk = [edge >= bound if desc else edge <= bound] if bound is not None else []
    if start is not None:
        walk.append(edge < start if desc else edge > start)
    walked = keyed(walk, desc, limit + 1) if callable(keyed) else keyed.where(*walk) if walk else keyed
    _plan("walk")
    return db.session.execute(walked.order_by(*order).limit(limit + 1)).all()


def _few(keyed, query, id_col, sort_col, desc: bool, limit: int):
    """The page when the search and filters select at most SET_ROWS rows after the cursor and
    the planner expects them to be found cheaply (bitmap scans of their indexes); else None."""
    # bitmap scans of the indexes only (an ordered index walk was step 1)
    _plan("few")
    conn = db.session.connection()
    every = keyed.with_only_columns(id_col, sort_col.label("sort_value"))
    # (the cost of finding them all: under a LIMIT the planner discounts the cost of a
    # bitmap it must build whole before the first row)
    compiled = every.compile(conn)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
    if (plan[0] if isinstance(plan, list) else plan)["Plan"]["Total Cost"] > SET_COST:
        return None
    probe = every.limit(SET_ROWS + 1)
    found = probe.cte("found").prefix_with("MATERIALIZED")
    count = select(func.count()).select_from(found).scalar_subquery()
    fid = found.c[id_col.key]
    top = select(fid, count).order_by(*((found.c.sort_value.desc(), fid.desc()) if desc
                                         else (found.c.sort_value, fid))).limit(limit + 1)
    picked = db.session.execute(top).all()
    if picked and picked[0][1] > SET_ROWS:
        return None
    ids = [r[0] for r in picked]
    order = (sort_col.desc(), id_col.desc()) if desc else (sort_col, id_col)
    return db.session.execute(query.where(id_col.in_(ids)).order_by(*order)).all() if ids else []


text_reltuples = text("(SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t))")


def _table_rows(table) -> float:
    """The planner's count of the table's rows (pg_class.reltuples: -1 before its first
    ANALYZE, then no prediction is made)."""
    return db.session.execute(select(func.coalesce(text_reltuples, -1)),
                              {"t": table.name}).scalar()


def _walk_on(keyed, id_col, sort_col, parse, desc: bool, limit: int, value_of, rows: list, bound) -> dict:
    """Step 4: the walk goes on from ``bound`` (where the first one stopped, having found
    ``rows``) to LONG_WALK_ROWS rows after the cursor in all; the page is the matches found,
    and if it is not full, its cursor is where the walk stopped (``partial``)."""
    far = _bound(id_col, sort_col, parse, desc, None, max(LONG_WALK_ROWS - WALK_ROWS, 1), start=bound)
    rows = rows + _walk(keyed, id_col, sort_col, desc, far, limit - len(rows), start=bound)
    if far is None or len(rows) > limit:
        return _page(rows, limit, value_of)
    return {"items": rows, "next_after": f"{_cursor_value(far[0])}|{far[1]}", "partial": True}


def _walk_form(walk_form, cursor: list):
    """``walk_form`` as _walk takes it: given the walked range's conditions, the direction and
    the number of rows wanted, the query in that form with those conditions and the cursor's."""
    return lambda walk, desc, limit: walk_form(cursor + walk, desc, limit).where(*cursor, *walk)


def narrowed_page(query, id_col, *, sort_col, parse, desc: bool, after: str | None, limit: int,
                  value_of, fallback: dict | None = None, by_index=None, few: bool = True,
                  first: tuple | None = None, walk_form=None) -> dict:
    """``sorted_page`` for a searched or filtered list on PostgreSQL, at a bounded cost
    whatever the matches' number and place (bench/tables.py; bench/README.md):

    1. the ordered walk, over the next WALK_ROWS rows of the list's order only (their end
       read off the sort column's index): enough when matches are common near the cursor;
       when it found some, at a rate that would fill the page within LONG_WALK_ROWS rows
       (PICKED_WALK_ROWS when a ``fallback`` may answer instead), the walk goes on (step 4)
       without trying the indexes: the matches are too many to sort (a surname's 13,000
       contracts: 0.2-0.6 s of bitmaps, where the walk in id order takes 50 ms);
    2. else, when the search and filters select at most SET_ROWS rows after the cursor (and
       the planner expects them cheap to find), those rows, found by their indexes and sorted;
    3. else the matches are many but far from the cursor in this order (a common surname
       sorted by name: the walk would pass half the table). Then, if given, ``fallback``
       (sort_col, parse, desc, after, value_of of the id order, newest first) answers, where they are
       spread (without step 2 again: the same matches); the page says so (``fell_back``) and
       its next pages follow that order;
    4. else the walk goes on from where step 1 stopped, to LONG_WALK_ROWS rows in all: the
       matches among them, and a cursor at its end (``partial``), so that "Show more" searches on.

    ``by_index``: the same rows as ``query`` in a shape the planner finds by indexes (a search
    over joined tables as a union of ids: portal/admin/lists.py), for step 2. ``first``: step
    1's (bound, rows), already walked. ``walk_form``: for walks in the id order, a function of
    the walked range's conditions on the id (a list), the direction (desc) and the number of
    rows the walk takes (limit + 1) that returns the same first rows as
    ``query`` in that range, in a shape cheaper to walk (the accounts' sync filter: the ids a
    filter's own index finds in that range; a payments search: the first matches among the
    payments' texts, ``payment_texts``; portal/admin/lists.py); the range is applied to it too.

    L1: when step 1 in a picked order found nothing near the cursor and a ``fallback`` may
    answer, the fallback's own first walk (the id order, where matches are spread) is taken
    before step 2 to tell how many match: step 2's guard is the planner's estimate, which for
    a substring is a guess (100 rows expected of «петрович», 27,653 hold it at 1M, after the
    6,000 companies that come first by name), and its probe then gathered 2,001 of them for
    nothing (22 ms). That walk is the fallback's first step, so it is not repeated.

    Every answer is exact for the order it states: a page holds the first matches after its
    cursor in that order. SQLite has no such planner pitfalls at its sizes: ``sorted_page``."""
    kw = dict(sort_col=sort_col, parse=parse, desc=desc, after=after, limit=limit, value_of=value_of)
    if db.session.get_bind().dialect.name != "postgresql":
        return sorted_page(query, id_col, **kw)
    keyed = _keyset(query, id_col, sort_col, parse, desc, after)
    walked = keyed if walk_form is None or sort_col is not id_col else \
        _walk_form(walk_form, _after(id_col, sort_col, parse, desc, after))
    if first is None:
        bound = _bound(id_col, sort_col, parse, desc, after, WALK_ROWS)
        rows = _walk(walked, id_col, sort_col, desc, bound, limit)
    else:
        bound, rows = first
    if bound is None or len(rows) > limit:  # the walk reached the end, or found a page
        return _page(rows, limit, value_of)
    on = (walked, id_col, sort_col, parse, desc, limit, value_of, rows, bound)
    budget = (LONG_WALK_ROWS if fallback is None else PICKED_WALK_ROWS) - WALK_ROWS
    if rows and (limit + 1 - len(rows)) * WALK_ROWS <= len(rows) * budget:
        return _walk_on(*on)
    if few and rows and len(rows) * _table_rows(id_col.table) > SET_ROWS * WALK_ROWS:
        few = False  # (the walk's rate of matches, over the table, predicts too many to sort)
    spread = None
    if few and not rows and fallback is not None and fallback["after"] is None:
        # L1: the fallback's first walk, to count by (see above): four times SET_ROWS predicted
        # (9 in 1,000 at 1M) before step 2 is skipped, so a count near SET_ROWS is still probed
        fb = fallback
        fb_bound = _bound(id_col, fb["sort_col"], fb["parse"], fb["desc"], None, WALK_ROWS)
        fb_keyed = _keyset(query, id_col, fb["sort_col"], fb["parse"], fb["desc"], None)
        if walk_form is not None and fb["sort_col"] is id_col:
            fb_keyed = _walk_form(walk_form, [])
        fb_rows = _walk(fb_keyed, id_col, fb["sort_col"], fb["desc"], fb_bound, limit)
        spread = (fb_bound, fb_rows)
        if fb_bound is not None and len(fb_rows) * _table_rows(id_col.table) > 4 * SET_ROWS * WALK_ROWS:
            few = False
    if few:
        indexed = keyed if by_index is None else _keyset(by_index, id_col, sort_col, parse, desc, after)
        found = _few(indexed, query, id_col, sort_col, desc, limit)
        if found is not None:
            return _page(found, limit, value_of)
    if fallback is not None:
        return {**narrowed_page(query, id_col, limit=limit, by_index=by_index, few=False, first=spread,
                                walk_form=walk_form, **fallback), "fell_back": True}
    return _walk_on(*on)
