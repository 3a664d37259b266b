"""The staff lists: subscribers, contracts, accounts, payments, audit log.

Every list is one `ListSpec`: its query, the columns searched as you type, the filters and the
sortable columns. One view function serves them all: the full page, or only the table body for
an HTMX request; the URL carries the search, filters and sort, so a link or a reload shows the
same view. Pages are keyset pages on (sort column, id) — no COUNT(*), no OFFSET — so the first
page and the ten-thousandth cost the same at a million rows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import lazy_gettext as _l
from sqlalchemy import ARRAY, BigInteger, Integer, any_, cast, exists, func, or_, select, type_coerce, union_all
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.sql.expression import ColumnClause
from sqlalchemy.sql.visitors import replacement_traverse

from .. import listing
from ..billing import clock
from ..extensions import db
from ..listing import narrowed_page, sorted_page
from ..models import (
    ACCOUNT_STATUSES,
    SYNC_STATES,
    Account,
    Agent,
    AuditEntry,
    Contract,
    LedgerEntry,
    PaymentText,
    StaffUser,
    Subscriber,
    SyncState,
    Tariff,
)
from ..models.base import from_minor
from ..models.search import matches
from ..web import (
    PAYMENT_SOURCE_TITLES,
    account_status_text,
    action_title,
    actor_title,
    audit_summary,
    id_link,
    is_htmx,
    once_per_request,
    remember_staff_names,
    source_title,
    state_title,
)
from . import bp
from .auth import staff_required

PAGE_SIZE = 50


@dataclass
class Sort:
    column: object          # the NOT NULL column to order by (ties broken by id)
    parse: Callable         # cursor text -> value
    attr: str               # attribute of the row's first entity holding the value


@dataclass
class Filter:
    name: str
    title: object
    options: Callable[[], list[tuple[str, str]]]
    apply: Callable          # (query, value) -> query
    # (query, value) -> query, the same rows in the shape a walk row by row needs (listing's
    # bounded walks), when that differs from ``apply`` (which the indexes and totals use)
    walk: Callable | None = None
    # (query, value, the walked range's conditions on the id) -> query: the same rows in that
    # range in the shape of a walk in the id order (listing.narrowed_page's ``walk_form``)
    walk_by_id: Callable | None = None


@dataclass
class ListSpec:
    endpoint: str
    title: object
    rows_template: str
    query: Callable[[], object]                  # () -> select(main entity, joined...)
    columns: list[tuple[object, str | None, str]]  # (title, sort key or None, css class)
    search: Callable[[], tuple] = tuple           # () -> columns searched with q
    # q -> the condition a row must meet (words in any order, ё = е, phones in any form:
    # models/search.py); instead of ``search`` when set
    match: Callable[[str], object] | None = None
    # q -> a select of the main rows' ids that ``match`` holds for, found table by table by
    # each one's index (a union), for a search over joined tables: listing.narrowed_page
    match_ids: Callable[[str], object] | None = None
    placeholder: object = ""
    filters: list[Filter] = field(default_factory=list)
    sorts: dict[str, Sort] = field(default_factory=dict)
    default_sort: str = "-created"
    # The order of search results when the user has not picked one (None: default_sort). A
    # list browsed in a non-id order (subscribers by name) finds typed terms in id order: by
    # name, the matches of a surname sit together in the middle of the name index, and at a
    # million rows the walk to them took 0.8-1.3 s (bench/tables.py; bench/README.md).
    search_sort: str | None = None
    new_endpoint: str | None = None               # "New ..." button, for staff who may write
    # exports (admin/exports.py): the header and a row's values, in the table's order, in the
    # words the screen shows (who, what, a status or source), money and times as values
    export_header: list = field(default_factory=list)
    export_row: Callable | None = None
    # money lists: (query, cap=None) -> (title, value) pairs over everything the search and
    # filters select, from ``totals_query`` (the main table alone: the search comes as
    # ``match_ids``); with ``cap``, None when they are that many rows or more
    totals: Callable | None = None
    totals_query: Callable | None = None
    # query -> the rows the totals sum (what the planner's estimate is read of: see _totals)
    totals_rows: Callable | None = None
    # a page's rows -> None, before they are shown: reads what the rows show from other tables
    # in one statement for the page (the audit log's staff names), not one per row
    prepare: Callable | None = None
    # (args, the walked range's conditions on the id, desc, n) -> a condition on the main id: the
    # first n rows in that range that the search and filters of ``args`` select, found in a
    # narrower table than the list's query (listing.narrowed_page's ``walk_form``, id order):
    # the payments' texts (``_payment_walk``)
    walk_search: Callable | None = None


def _by_id(model) -> Sort:
    """"Created" order is id order: monotonic, unique and always indexed."""
    return Sort(model.id, int, "id")


def _options(model, label="name") -> Callable:
    return lambda: [(str(o.id), getattr(o, label)) for o in db.session.scalars(select(model).order_by(model.id))]


def _choices(values):
    return lambda: [(v, state_title(v)) for v in values]


def _since(days: int):
    start = datetime.combine(clock.today() - timedelta(days=days - 1), datetime.min.time(), tzinfo=clock.tz())
    return LedgerEntry.created_at >= start


def _contract_match(q: str):
    """H3: a contract by its number as typed, or by its own search text (its number and its
    subscriber's name, phones...: models/search.py), so no subscriber is read to find it: a
    walk reads contracts only, and the indexes are two trigram indexes of contracts (a BitmapOr,
    so no ``match_ids``: as ``id IN (...)`` the totals of «777» hashed every debtor, 0.3 s)."""
    by_text = matches(Contract.search_text, q)
    by_number = Contract.number.icontains(q.strip(), autoescape=True)
    return by_number if by_text is None else or_(by_number, by_text)


def _payment_ids(q: str):
    payment = LedgerEntry.kind == "payment"  # (the partial trigram indexes hold payments only)
    parts = [select(LedgerEntry.id).where(payment, LedgerEntry.idempotency_key.icontains(q.strip(), autoescape=True)),
             select(LedgerEntry.id).where(payment, LedgerEntry.comment.icontains(q.strip(), autoescape=True))]
    if (payers := matches(PaymentText.payer, q)) is not None:  # L: the payers' texts beside the payments
        parts.append(select(PaymentText.entry_id).where(payers))
    return union_all(*parts)


def _payment_text_match(q: str):
    """The payments search (``PAYMENTS.match``) on ``payment_texts``: the same texts (the
    payment's key and comment as posted, the payer as the contract's ``search_text``, which
    the triggers keep: models/payment_texts.py), so the same rows."""
    texts = PaymentText
    payer = matches(texts.payer, q)
    return or_(texts.key.icontains(q.strip(), autoescape=True), texts.comment.icontains(q.strip(), autoescape=True),
               *(() if payer is None else (payer,)))


# the ledger's columns that payment_texts holds too, by name there (models/payment_texts.py)
_TEXT_COLUMNS = {"id": "entry_id", "created_at": "created_at", "source": "source", "cashier_id": "cashier_id"}


def _to_texts(element):
    """A ledger column in a walked range's or a filter's conditions -> payment_texts' own."""
    table = getattr(element, "table", None)
    if isinstance(element, ColumnClause) and getattr(table, "name", None) == "ledger_entries" \
            and element.name in _TEXT_COLUMNS:
        return PaymentText.__table__.c[_TEXT_COLUMNS[element.name]]
    return None


def _payment_walk(args: dict, walked: list, desc: bool, n: int):
    """L (issue 16): a payments search walked on ``payment_texts``, not on the ledger and each
    payment's contract: the first ``n`` payments in the walked range (id order) whose filters
    (time, source, cashier: copied there as posted, tested first) and texts match, read off its
    primary key (one narrow row per payment: the walk of ~3,600 payments for a page of a common
    surname at 1M read 92 buffers instead of 14,541); the list's query then reads those payments
    by id."""
    texts = PaymentText
    conditions = [replacement_traverse(c, {}, _to_texts) for c in walked]
    for f in PAYMENTS.filters:
        if f.name in args:
            conditions.append(replacement_traverse(f.apply(select(LedgerEntry.id), args[f.name]).whereclause,
                                                   {}, _to_texts))
    found = select(texts.entry_id).where(*conditions, _payment_text_match(args["q"])) \
        .order_by(texts.entry_id.desc() if desc else texts.entry_id).limit(n).subquery()
    ids = select(func.array_agg(found.c.entry_id)).scalar_subquery()
    return LedgerEntry.id == any_(cast(ids, ARRAY(BigInteger)))


# The words exports write for codes that repeat on every row (who, where from, what, about what):
# each code's words made once per export, not once per row
_actor_said, _source_said = once_per_request(actor_title), once_per_request(source_title)
_action_said = once_per_request(action_title)
_object_said = once_per_request(lambda code: str(OBJECT_TYPES.get(code, code)))

SUBSCRIBERS = ListSpec(
    endpoint="admin.subscribers", title=_l("Subscribers"), rows_template="admin/lists/_subscribers.html",
    query=lambda: select(Subscriber).options(selectinload(Subscriber.contracts)),
    search=lambda: (Subscriber.full_name, Subscriber.email, Subscriber.cabinet_login),
    match=lambda q: matches(Subscriber.search_text, q),
    placeholder=_l("Search: name, phone, e-mail, cabinet login"),
    columns=[("ID", "created", "num"), (_l("Name"), "name", ""), (_l("Kind"), None, ""), (_l("Phones"), None, ""),
             (_l("Contracts"), None, ""), ("E-mail", None, ""), (_l("Cabinet login"), None, "")],
    filters=[Filter("kind", _l("Kind"), lambda: [("person", _l("person")), ("company", _l("company"))],
                    lambda q, v: q.where(Subscriber.kind == v))],
    sorts={"created": _by_id(Subscriber), "name": Sort(Subscriber.full_name, str, "full_name")},
    default_sort="name", search_sort="-created", new_endpoint="admin.new_subscriber",
    export_header=["ID", _l("Name"), _l("Kind"), _l("Phones"), _l("Contracts"), "E-mail", _l("Cabinet login"),
                   _l("Created")],
    export_row=lambda r: [r[0].id, r[0].full_name, r[0].kind, ", ".join(r[0].phones or []),
                          ", ".join(c.number for c in r[0].contracts), r[0].email, r[0].cabinet_login,
                          r[0].created_at],
)

CONTRACTS = ListSpec(
    endpoint="admin.contracts", title=_l("Contracts"), rows_template="admin/lists/_contracts.html",
    query=lambda: select(Contract, Subscriber).join(Subscriber, Contract.subscriber_id == Subscriber.id),
    search=lambda: (Contract.number,),
    match=lambda q: _contract_match(q),
    placeholder=_l("Search: contract number, subscriber"),
    columns=[(_l("Number"), "number", ""), (_l("Subscriber"), None, ""), (_l("Balance"), "balance", "num"),
             (_l("Credit limit"), None, "num"), (_l("Do not block"), None, ""), (_l("Created"), "created", "")],
    filters=[Filter("debt", _l("Balance"),
                    lambda: [("negative", _l("negative")), ("below_limit", _l("below credit limit"))],
                    lambda q, v: q.where(Contract.balance < 0) if v == "negative"
                    else q.where(Contract.balance < -Contract.credit_limit)),
             # H3: "do_not_block" / "NOT do_not_block" (not "IS true": the partial index's
             # condition must be read off the query)
             Filter("do_not_block", _l("Do not block"), lambda: [("1", _l("yes")), ("0", _l("no"))],
                    lambda q, v: q.where(Contract.do_not_block if v == "1" else ~Contract.do_not_block))],
    sorts={"created": _by_id(Contract), "number": Sort(Contract.number, str, "number"),
           "balance": Sort(Contract.balance, Decimal, "balance")},
    export_header=[_l("Number"), _l("Subscriber"), _l("Balance"), _l("Credit limit"), _l("Do not block"),
                   _l("Created")],
    export_row=lambda r: [r[0].number, r[1].full_name, r[0].balance, r[0].credit_limit, r[0].do_not_block,
                          r[0].created_at],
    totals=lambda q, cap=None: _debt_totals(q, cap), totals_query=lambda: select(Contract),
    totals_rows=lambda q: q.where(Contract.balance < 0),
)


def _sync_filter(query, state):
    return query.where(exists().where(SyncState.account_id == Account.id, SyncState.state == state))


def _sync_filter_by_id(query, state, walked: list):
    """L1: ``_sync_filter`` for a walk of the accounts in id order over the range ``walked``:
    the ids of the accounts in that range with a state ``state``, read in one statement off
    ``ix_sync_states_due`` (a state's few thousand rows), then the walk takes those ids only,
    instead of probing every walked account's states (the walk of 19,000 accounts for the
    2,100 'retry' ones: 17-20 ms -> 4-5 ms at 1M, EXPLAIN ANALYZE). «ok» (98 % of the states)
    stays a probe: a walk finds those at once."""
    if state == "ok":
        return _sync_filter_walked(query, state)
    states = SyncState.__table__

    def account_id(element):  # accounts.id in the range's conditions -> sync_states.account_id
        table = getattr(element, "table", None)
        if isinstance(element, ColumnClause) and getattr(table, "name", None) == "accounts" and element.name == "id":
            return states.c.account_id
        return None

    in_range = [replacement_traverse(c, {}, account_id) for c in walked]
    ids = select(func.array_agg(states.c.account_id)).where(states.c.state == state, *in_range).scalar_subquery()
    return query.where(Account.id == any_(cast(ids, ARRAY(Integer))))


def _sync_filter_walked(query, state):
    """``_sync_filter`` as a probe of each walked account's states by its index (the OFFSET
    keeps PostgreSQL from making it a join: a walk has hash joins off, and as a nested loop
    the semi-join read every state of that kind per account, 40-50 s at 1M)."""
    probe = select(SyncState.id).where(SyncState.account_id == Account.id, SyncState.state == state).offset(0)
    return query.where(probe.exists())


ACCOUNTS = ListSpec(
    endpoint="admin.accounts", title=_l("Accounts"), rows_template="admin/lists/_accounts.html",
    query=lambda: (select(Account, Contract, Subscriber, Tariff, Agent)
                   .join(Contract, Account.contract_id == Contract.id)
                   .join(Subscriber, Contract.subscriber_id == Subscriber.id)
                   .join(Agent, Account.agent_id == Agent.id)
                   .outerjoin(Tariff, Account.tariff_id == Tariff.id)),
    search=lambda: (Account.login, Account.house),
    match=lambda q: matches(Account.search_text, q),
    placeholder=_l("Search: login, address"),
    columns=[(_l("Login"), "login", ""), (_l("Status"), None, ""), (_l("Subscriber"), None, ""),
             (_l("Contract"), None, ""), (_l("Agent"), None, ""), (_l("Tariff"), None, ""), (_l("Address"), None, ""),
             (_l("Created"), "created", "")],
    filters=[Filter("status", _l("Status"), _choices(ACCOUNT_STATUSES), lambda q, v: q.where(Account.status == v)),
             Filter("agent", _l("Agent"), _options(Agent), lambda q, v: q.where(Account.agent_id == int(v))),
             Filter("tariff", _l("Tariff"), _options(Tariff), lambda q, v: q.where(Account.tariff_id == int(v))),
             Filter("sync", _l("Sync"), _choices(SYNC_STATES), _sync_filter, walk=_sync_filter_walked,
                    walk_by_id=_sync_filter_by_id)],
    sorts={"created": _by_id(Account), "login": Sort(Account.login, str, "login")},
    export_header=[_l("Login"), _l("Status"), _l("Subscriber"), _l("Contract"), _l("Agent"), _l("Tariff"),
                   _l("Address"), _l("Flat"), _l("Created")],
    export_row=lambda r: [r[0].login, account_status_text(r[0]), r[2].full_name, r[1].number, r[4].name,
                          r[3].name if r[3] else None, r[0].house, r[0].flat, r[0].created_at],
)

# a payment's storno, if cancelled (one at most: its cancels_id is unique, so the join adds no rows)
Storno = aliased(LedgerEntry, name="storno")

PAYMENTS = ListSpec(
    endpoint="admin.payments", title=_l("Payments"), rows_template="admin/lists/_payments.html",
    query=lambda: (select(LedgerEntry, Contract, Subscriber, Storno).where(LedgerEntry.kind == "payment")
                   .join(Contract, LedgerEntry.contract_id == Contract.id)
                   .join(Subscriber, Contract.subscriber_id == Subscriber.id)
                   .outerjoin(Storno, Storno.cancels_id == LedgerEntry.id)),
    search=lambda: (LedgerEntry.idempotency_key, LedgerEntry.comment),
    match=lambda q: or_(LedgerEntry.idempotency_key.icontains(q.strip(), autoescape=True),
                        LedgerEntry.comment.icontains(q.strip(), autoescape=True),
                        matches(Contract.search_text, q)),  # H3: the payer, without reading subscribers
    match_ids=lambda q: _payment_ids(q),
    walk_search=lambda args, walked, desc, n: _payment_walk(args, walked, desc, n),
    placeholder=_l("Search: payment id, comment, payer"),
    columns=[(_l("Date"), "created", ""), (_l("Amount"), None, "num"), (_l("Contract"), None, ""),
             (_l("Subscriber"), None, ""), (_l("Payment id"), None, ""), (_l("Comment"), None, ""),
             (_l("Author"), None, ""), (_l("Source"), None, "")],
    filters=[Filter("period", _l("Period"),
                    lambda: [("1", _l("today")), ("7", _l("7 days")), ("30", _l("30 days"))],
                    lambda q, v: q.where(_since(int(v)))),
             # (source, id) and (cashier_id, id) indexes over payments: migration d124c2daebf3
             Filter("source", _l("Source"), lambda: list(PAYMENT_SOURCE_TITLES.items()),
                    lambda q, v: q.where(LedgerEntry.source == v)),
             Filter("cashier", _l("Cashier"), _options(StaffUser, "login"),
                    lambda q, v: q.where(LedgerEntry.cashier_id == int(v)))],
    sorts={"created": _by_id(LedgerEntry)},
    # "Received" is the amount, or 0 for a cancelled payment: its column sums to the totals'
    # "Received" (a cancelled payment and its storno are no money in)
    export_header=[_l("Date"), _l("Amount"), _l("Contract"), _l("Subscriber"), _l("Payment id"), _l("Comment"),
                   _l("Author"), _l("Source"), _l("Cancelled"), _l("Reason for cancelling"), _l("Received")],
    export_row=lambda r: [r[0].created_at, r[0].amount, r[1].number, r[2].full_name,
                          (r[0].idempotency_key or "").removeprefix("payment:") or None, r[0].comment,
                          _actor_said(r[0].author) if r[0].author else None, _source_said(r[0].source),
                          r[3].created_at if r[3] is not None else None,
                          r[3].comment if r[3] is not None else None,
                          Decimal("0.00") if r[3] is not None else r[0].amount],
    totals=lambda q, cap=None: _payment_totals(q, cap),
    totals_query=lambda: select(LedgerEntry).where(LedgerEntry.kind == "payment"),
    prepare=lambda rows: remember_staff_names(e.author for (e, *_rest) in rows),  # the "Author" column's names
)

# What audit entries are about (billing.audit names them after the table, singular).
OBJECT_TYPES = {
    "subscriber": _l("subscriber"), "contract": _l("contract"), "account": _l("account"),
    "assigned_service": _l("assigned service"), "agent": _l("agent"),
    "catalog_service": _l("catalog service"), "tariff": _l("tariff"), "extra_field_definition": _l("extra field"),
    "charge_run": _l("charge run"), "staff_user": _l("staff user"), "api_token": _l("API token"),
    "platform_connection": _l("platform connection"), "job": _l("job"), "system": _l("system"),
    "platform": _l("platform"), "payment_agent": _l("payment agent"), "promised_rule": _l("promised payment rules"),
    "promised_payment": _l("promised payment"), "task": _l("task"), "department": _l("department"),
    "data_center": _l("data center"), "bm_handler": _l("BILLmanager handler"), "bm_tariff": _l("hosting tariff"),
    "bm_service": _l("hosting service"), "stalker_stb": _l("STB"),
}

AUDIT = ListSpec(
    endpoint="admin.audit", title=_l("Audit log"), rows_template="admin/lists/_audit.html",
    query=lambda: select(AuditEntry),
    search=lambda: (AuditEntry.summary, AuditEntry.actor),
    placeholder=_l("Search: who, summary"),
    columns=[(_l("When"), "created", ""), (_l("Who"), None, ""), (_l("Action"), None, ""), (_l("Object"), None, ""),
             (_l("Summary"), None, "")],
    filters=[Filter("object", _l("Object"), lambda: list(OBJECT_TYPES.items()),
                    lambda q, v: q.where(AuditEntry.object_type == v))],
    sorts={"created": _by_id(AuditEntry)},
    export_header=[_l("When"), _l("Who"), _l("Action"), _l("Object"), _l("Object id"), _l("Summary")],
    export_row=lambda r: [r[0].at, _actor_said(r[0].actor), _action_said(r[0].action),
                          _object_said(r[0].object_type), r[0].object_id, audit_summary(r[0])],
    prepare=lambda rows: remember_staff_names(e.actor for (e,) in rows),
)


def _payment_totals(query, cap: int | None = None) -> list[tuple] | None:
    """What the filter selects as money received: the payments not cancelled, and their sum (a
    cancelled payment and its storno move no money in, as the bank sees it); then the cancelled
    ones apart when there are any. All of them summed from the index, less the cancelled ones
    found from their stornos (few: the cancels_id index). ``cap``: sum at most that many
    payments (counted and summed in one pass); None when there are that many."""
    minor = lambda sub: type_coerce(sub.c.amount, BigInteger)  # noqa: E731  (summed as stored: minor units)
    sub = (query if cap is None else query.limit(cap)).subquery()
    n, total = db.session.execute(select(func.count(), func.coalesce(func.sum(minor(sub)), 0))).one()
    if cap is not None and n >= cap:
        return None
    cancelled = query.join(Storno, Storno.cancels_id == LedgerEntry.id).subquery()
    n_off, off = db.session.execute(select(func.count(), func.coalesce(func.sum(minor(cancelled)), 0))).one()
    totals = [(_l("Payments"), n - n_off), (_l("Received"), from_minor(total - off))]
    if n_off:
        totals += [(_l("Cancelled payments"), n_off), (_l("Cancelled, sum"), from_minor(off))]
    return totals


def _debt_totals(query, cap: int | None = None) -> list[tuple] | None:
    """How many of the selected contracts are in debt (balance below zero), and their debt;
    ``cap`` as in _payment_totals."""
    debtors = query.where(Contract.balance < 0)  # (a range of the (balance, id) index)
    sub = (debtors if cap is None else debtors.limit(cap)).subquery()
    minor = type_coerce(sub.c.balance, BigInteger)
    n, total = db.session.execute(select(func.count(), func.coalesce(func.sum(minor), 0))).one()
    if cap is not None and n >= cap:
        return None
    return [(_l("Debtors"), n), (_l("Total debt"), from_minor(-total))]


# Totals are exact, and summed at once only over at most TOTALS_ROWS rows: at a million rows a
# sum over everything takes 0.1-0.5 s (all payments; a common term's contracts), where counting
# up to the cap costs a few ms (an index range stopped by a LIMIT). Past it the totals say
# "more than N" and offer the exact figures on a click (``exact``). When the planner expects
# far more (a common term's matches, found as a union of ids, take seconds to gather just to
# count them: «сбербанк», 285,000 payments, 4.5 s), the totals say they take long, with the
# same click (no timer decides it: the same data gets the same answer). The click's sum gets
# TOTALS_TIMEOUT_MS, past it "too many rows to total".
TOTALS_ROWS = 20000
TOTALS_TIMEOUT_MS = 5000


def _timed(ms: int, run):
    """``run()`` under a statement timeout of ``ms`` (PostgreSQL) in a savepoint; None when
    cancelled (the savepoint rolled back, the transaction goes on). The timeout lasts to the
    end of this read-only request (each step sets its own)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return run()
    try:
        with db.session.begin_nested():
            db.session.execute(select(func.set_config("statement_timeout", str(ms), True)))
            return run()
    except OperationalError as e:
        if getattr(e.orig, "sqlstate", None) != "57014":  # query_canceled
            raise
        return None


def _expected_many(spec: ListSpec, query) -> bool:
    """Whether the planner expects more than twice TOTALS_ROWS rows to sum (PostgreSQL):
    gathering them just to count them is then the slow part."""
    if db.session.get_bind().dialect.name != "postgresql":
        return False
    summed = spec.totals_rows(query) if spec.totals_rows else query
    ids = summed.with_only_columns(spec.query().column_descriptions[0]["entity"].id)
    conn = db.session.connection()
    compiled = ids.compile(conn)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
    return (plan[0] if isinstance(plan, list) else plan)["Plan"]["Plan Rows"] > 2 * TOTALS_ROWS


def _or_false(value):
    return False if value is None else value


def _totals(spec: ListSpec, args: dict, exact: bool = False) -> dict:
    listing.no_jit()  # (a sum over many rows is costed past jit_above_cost: compiling took longer)
    query = filtered(spec, args, by_index=True, base=spec.totals_query() if spec.totals_query else None)
    if not exact and _expected_many(spec, query):
        return {"totals": [], "slow": True}
    # L1: at most TOTALS_ROWS + 1 rows counted and summed in one pass (``totals``' cap), not a
    # capped count and then the sum: each gathered the same matches («777» in debt at 1M: 32 +
    # 20 ms -> one statement)
    totals = _timed(TOTALS_TIMEOUT_MS, lambda: _or_false(spec.totals(query, None if exact else TOTALS_ROWS + 1)))
    if totals is False:
        return {"totals": [], "over": format_decimal(TOTALS_ROWS)}
    return {"totals": totals} if totals is not None else {"totals": [], "too_many": True}


def filtered(spec: ListSpec, args: dict, by_index: bool = False, base=None, walked: list | None = None):
    """The list's query with the search and the filters of ``args`` applied (no order, no page).
    ``by_index``: the search as the ids ``spec.match_ids`` finds by its indexes (the same rows;
    cheap when the matches are few, where the row-by-row condition would pass every row).
    ``walked``: for a walk in id order over the range these conditions select (a filter's
    ``walk_by_id``)."""
    query = spec.query() if base is None else base
    # L1: the filters first: PostgreSQL tests a row's conditions in this order when it costs
    # them alike, and a filter (a comparison) is cheaper than the search's LIKEs, so a walked
    # row the filter rejects is not searched («777» in contracts below the credit limit)
    for f in spec.filters:
        if f.name in args:
            if walked is not None and f.walk_by_id:
                query = f.walk_by_id(query, args[f.name], walked)
            else:
                query = (f.walk if f.walk and not by_index else f.apply)(query, args[f.name])
    if args["q"] and by_index and spec.match_ids is not None \
            and (ids := spec.match_ids(args["q"])) is not None:
        query = query.where(spec.query().column_descriptions[0]["entity"].id.in_(ids))
    elif args["q"] and spec.match is not None and (condition := spec.match(args["q"])) is not None:
        query = query.where(condition)
    elif args["q"] and spec.search():
        query = query.where(or_(*(col.icontains(args["q"], autoescape=True) for col in spec.search())))
    return query


def narrowed(spec: ListSpec, args: dict) -> bool:
    """Whether a search or a filter narrows the list (so a page may need a bounded plan)."""
    return bool(args["q"]) or any(f.name in args for f in spec.filters)


def page_of(spec: ListSpec, args: dict, query, after: str | None, limit: int) -> dict:
    """One page of the list in its order (``listing.narrowed_page`` when narrowed: a bounded
    cost at a million rows). When that answer comes in the id order instead, ``args["sort"]``
    is changed to it, so the next pages and the header follow."""
    key = args["sort"].lstrip("-")
    sort = spec.sorts[key]
    main = spec.query().column_descriptions[0]["entity"]
    kw = dict(sort_col=sort.column, parse=sort.parse, desc=args["sort"].startswith("-"), after=after,
              limit=limit, value_of=lambda row: (getattr(row[0], sort.attr), row[0].id))
    if not narrowed(spec, args):
        return sorted_page(query, main.id, **kw)
    by_id = spec.sorts["created"]
    # (a next page keeps the order of the first: only a first page may fall back to the id order)
    fallback = None if key == "created" or after else dict(
        sort_col=by_id.column, parse=by_id.parse, desc=True, after=None, value_of=lambda row: (row[0].id, row[0].id))
    # H7: the indexes' form over the main table alone where a list has one (``totals_query``:
    # its filters and search are on it, and its joins are to one row each), so that step 2's
    # probe of up to SET_ROWS matches does not look up each one's joined rows (contracts: a
    # probe into subscribers per match, 12 ms of 30 for «777» in debt at 1M)
    indexed = filtered(spec, args, by_index=True, base=spec.totals_query() if spec.totals_query else None)
    walk_form = None  # L1: a filter with its own form for walks in id order (the sync states)
    if args["q"] and spec.walk_search is not None:  # L: a search walked on a narrower table
        # (the list's query without the search and filters: the walk's form holds them)
        walk_form = lambda walked, desc, n: spec.query().where(spec.walk_search(args, walked, desc, n))  # noqa: E731
    elif any(f.walk_by_id and f.name in args for f in spec.filters):
        walk_form = lambda walked, desc, n: filtered(spec, args, walked=walked)  # noqa: E731
    page = narrowed_page(query, main.id, fallback=fallback, by_index=indexed, walk_form=walk_form, **kw)
    if page.get("fell_back"):
        args["sort"] = "-created"
    return page


def pages(spec: ListSpec, args: dict, size: int = 1000):
    """Every row the list shows for ``args``, in its order, a keyset page at a time (each page
    leaves the session, so memory stays flat at any length). Plain ordered pages: an export
    reads the whole selection once, so the walk's cost is spread over it, and its order never
    changes midway (``page_of`` may answer a page in id order)."""
    query = filtered(spec, args)
    key = args["sort"].lstrip("-")
    desc, sort = args["sort"].startswith("-"), spec.sorts[key]
    main = spec.query().column_descriptions[0]["entity"]
    after = None
    while True:
        page = sorted_page(query, main.id, sort_col=sort.column, parse=sort.parse, desc=desc, after=after,
                           limit=size, value_of=lambda row: (getattr(row[0], sort.attr), row[0].id))
        if spec.prepare is not None:  # (what the rows show from other tables: one statement a page)
            spec.prepare(page["items"])
        yield from page["items"]
        db.session.expunge_all()
        after = page["next_after"]
        if after is None:
            return


def current_args(spec: ListSpec, options: dict | None = None) -> dict:
    """The list's state as the URL gives it, valid values only (``options``: each filter's
    options, if already read)."""
    args = {"q": request.args.get("q", "").strip()}
    for f in spec.filters:
        value = request.args.get(f.name, "")
        # (an empty value is no option: a filter not in the URL reads none of its options)
        if value and value in {v for v, _t in (options[f.name] if options is not None else f.options())}:
            args[f.name] = value
    default = spec.search_sort if args["q"] and spec.search_sort else spec.default_sort
    sort = request.args.get("sort") or default  # (the search form sends sort="" until one is picked)
    args["sort"] = sort if sort.lstrip("-") in spec.sorts else default
    return args


class _Options(dict):
    """Each filter's options, read once a request and only when asked for (L2: the rows of an
    HTMX answer need none; agents, tariffs, staff were two round trips a request)."""

    def __init__(self, spec: ListSpec):
        super().__init__()
        self.filters = {f.name: f for f in spec.filters}

    def __missing__(self, name):
        options = self[name] = self.filters[name].options()
        return options


def render_list(spec: ListSpec):
    options = _Options(spec)
    args = current_args(spec, options)
    query = filtered(spec, args)
    if spec.totals and request.args.get("totals"):
        # Totals come in a request of their own (the page asks for them once shown): a sum over
        # a million rows takes 0.1-0.3 s and the rows need not wait for it.
        return render_template("admin/lists/_totals.html", **_totals(spec, args, bool(request.args.get("exact"))),
                               link=lambda **kw: url_for(spec.endpoint, **{k: v for k, v in {**args, **kw}.items()
                                                                           if v not in ("", None)}))
    page = page_of(spec, args, query, request.args.get("after") or None, PAGE_SIZE)
    if spec.prepare:
        spec.prepare(page["items"])
    key = args["sort"].lstrip("-")
    desc = args["sort"].startswith("-")

    def link(**changes):
        merged = {k: v for k, v in {**args, **changes}.items() if v not in ("", None)}
        return url_for(spec.endpoint, **merged)

    context = dict(spec=spec, page=page, args=args, sort_key=key, desc=desc, link=link, id_link=id_link,
                   set_rows=listing.SET_ROWS,
                   long_walk_rows=listing.LONG_WALK_ROWS,
                   filter_options=options)
    if is_htmx():
        # the next page appends rows; a new search/filter/sort also refreshes the header arrows
        return render_template("admin/lists/_body.html", appending=bool(request.args.get("after")), **context)
    return render_template("admin/lists/page.html", **context)


def _view(spec: ListSpec):
    def view():
        return render_list(spec)
    view.__doc__ = f"The {spec.endpoint.split('.')[1]} list."
    return staff_required()(view)


for _spec in (SUBSCRIBERS, CONTRACTS, ACCOUNTS, PAYMENTS, AUDIT):
    _name = _spec.endpoint.split(".")[1]
    bp.add_url_rule(f"/{_name}", _name, _view(_spec))
