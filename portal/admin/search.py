"""One search box for everything a caller may give: a name (ё = е, words in any order), a phone
in any written form, a contract number, a login, an e-mail, an address with its flat, an STB's
MAC. Results grouped by kind; a single hit opens at once (Enter in the top bar's box)."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Account, Contract, StalkerStb, Subscriber
from ..models.search import matches
from . import bp
from .auth import staff_required

LIMIT = 10  # per kind: a caller is found in the first few, or the query needs another word
# H10: a kind's newest LIMIT matches are first looked for among its newest STEPS * STRIDE rows,
# a STRIDE at a time, then (if fewer) by the trigram index below them. The index alone finds
# every match and sorts them: 20-30 ms for «+7 912» (7912 is in 15,000 phones at 1M), and
# building its bitmap costs as much even under a LIMIT; many matches are dense enough to meet
# LIMIT of them in the newest few thousand rows, and few matches are cheap to sort.
STRIDE = 3000
STEPS = 1


def _newest(model, q: str):
    """A condition that picks ``model``'s newest LIMIT matches of ``q`` by id. The walk tests
    the text on an expression no index answers, over one id range at a time, so PostgreSQL
    reads the range in id order and stops at the limit (a whole-table walk would be planned as
    a scan and a sort when the query has several words, whose selectivities it multiplies)."""
    found = matches(model.search_text, q)
    if found is None:
        return None
    walk, newest = matches(model.search_text + "", q), []
    # L: the newest id read by each statement itself (a scalar subquery: its index's last
    # entry), not by a statement of its own: two round trips fewer a search
    top = select(func.coalesce(func.max(model.id), 0)).scalar_subquery()
    for step in range(STEPS):
        if len(newest) >= LIMIT:
            break
        newest += db.session.scalars(select(model.id).where(model.id <= top - step * STRIDE,
                                                            model.id > top - (step + 1) * STRIDE, walk)
                                     .order_by(model.id.desc()).limit(LIMIT - len(newest))).all()
    if len(newest) < LIMIT:
        newest += db.session.scalars(select(model.id).where(model.id <= top - STEPS * STRIDE, found)
                                     .order_by(model.id.desc()).limit(LIMIT - len(newest))).all()
    return model.id.in_(newest)


def find(q: str) -> dict[str, list]:
    """Up to LIMIT hits of each kind, newest first."""
    q = (q or "").strip()
    if not q:
        return {"subscribers": [], "contracts": [], "accounts": []}
    people, places = _newest(Subscriber, q), _newest(Account, q)
    # (their contracts' numbers in one statement, not one per subscriber: H3)
    subscribers = db.session.scalars(select(Subscriber).options(selectinload(Subscriber.contracts)).where(people)
                                     .order_by(Subscriber.id.desc()).limit(LIMIT)).all() if people is not None else []
    contracts = db.session.execute(
        select(Contract, Subscriber).join(Subscriber, Contract.subscriber_id == Subscriber.id)
        .where(Contract.number.icontains(q, autoescape=True)).order_by(Contract.id.desc()).limit(LIMIT)).all()
    mac = q.replace("-", ":").upper()
    accounts = db.session.execute(
        select(Account, Subscriber).join(Contract, Account.contract_id == Contract.id)
        .join(Subscriber, Contract.subscriber_id == Subscriber.id)
        .where(places).order_by(Account.id.desc()).limit(LIMIT)).all() if places is not None else []
    by_stb = db.session.execute(
        select(Account, Subscriber).join(StalkerStb, StalkerStb.account_id == Account.id)
        .join(Contract, Account.contract_id == Contract.id).join(Subscriber, Contract.subscriber_id == Subscriber.id)
        .where(StalkerStb.mac.contains(mac, autoescape=True)).order_by(Account.id.desc()).limit(LIMIT)).all() \
        if sum(c in "0123456789ABCDEF" for c in mac) >= 4 else []
    seen = {a.id for a, _s in accounts}
    accounts += [row for row in by_stb if row[0].id not in seen]
    return {"subscribers": list(subscribers), "contracts": list(contracts), "accounts": accounts[:LIMIT]}


def _single(found: dict) -> str | None:
    """The page of the only hit, if there is exactly one."""
    hits = [(kind, row) for kind, rows in found.items() for row in rows]
    if len(hits) != 1:
        return None
    kind, row = hits[0]
    if kind == "subscribers":
        return url_for("admin.subscriber", subscriber_id=row.id)
    if kind == "contracts":
        return url_for("admin.contract", contract_id=row[0].id)
    return url_for("admin.account", account_id=row[0].id)


@bp.route("/search")
@staff_required()
def search():
    q = (request.args.get("q") or "").strip()[:200]
    found = find(q)
    if request.args.get("go") and (target := _single(found)):
        return redirect(target)
    return render_template("admin/search.html", q=q, found=found,
                           total=sum(len(rows) for rows in found.values()), limit=LIMIT)
