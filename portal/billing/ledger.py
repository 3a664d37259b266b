"""The contract ledger: the only code that moves money.

Every posting inserts a ledger row and adds the same amount to the cached balance in one
SQL UPDATE (``balance = balance + x``), in the caller's transaction, so the balance equals
the ledger sum at all times, also under concurrent writers.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import BigInteger, String, bindparam, case, func, insert, literal, select, true, type_coerce, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from ..db_setup import dialect_insert
from ..extensions import db
from ..models import (
    Account,
    AssignedService,
    AuditEntry,
    CatalogService,
    Contract,
    LedgerEntry,
    OutboxEvent,
    from_minor,
    to_minor,
    utcnow,
)
from ..models.ledger import PAYMENT_AGENT, PAYMENT_API, PAYMENT_CASH, PAYMENT_ONLINE, PAYMENT_SOURCES, PAYMENT_STATEMENT
from . import audit, driver_sql, inputs, notice_events, notices
from .errors import BillingError, NotFound
from .hooks import known_platforms
from .outbox import platforms_query, remember
from .sqlfrag import json_object

# Which sign each kind of entry may carry.
SIGN_RULES = {"payment": 1, "refund": 1, "charge": -1, "correction": 0}


def parse_amount(value, field: str = "amount") -> Decimal:
    """A money amount from user input: a decimal with at most two places (``inputs`` reads it)."""
    return inputs.parse_amount(value, field)


def _apply(contract_id: int, minor: int) -> None:
    db.session.execute(
        update(Contract).where(Contract.id == contract_id)
        .values(balance=type_coerce(Contract.__table__.c.balance, BigInteger) + minor)
        .execution_options(synchronize_session=False)
    )


# A posting's statements, built once per process (building one cost about as much as running it).
_ENTRY_COLUMNS = ("contract_id", "kind", "amount", "comment", "author", "idempotency_key", "created_at", "source",
                  "cashier_id", "reason", "cancels_id")


@cache
def _insert_entry(dialect: str, keyed: bool):
    """INSERT of one entry, only if its contract exists (INSERT ... SELECT ... FROM contracts: the
    contract's check and the insert in one round trip), and with a key only if the key is new
    (ON CONFLICT DO NOTHING: a parallel request with the same key cannot post twice, and no
    savepoint is needed; SQLite's are unreliable through pysqlite). Returns the new id, or no row."""
    table, c = LedgerEntry.__table__, Contract.__table__.c
    values = select(*[bindparam(name, type_=table.c[name].type) for name in _ENTRY_COLUMNS]) \
        .where(c.id == bindparam("contract_id"))
    stmt = dialect_insert(table).from_select(list(_ENTRY_COLUMNS), values)
    if keyed:
        stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
    return stmt.returning(table.c.id)


@cache
def _apply_returning():
    """The balance UPDATE, returning whether the balance rule has nothing to do now
    (blocking.idle) and whether the contract's money is at zero or above (then the rule has
    nothing to block and no grace to warn of)."""
    from .blocking import idle
    from .grace import money_minor

    c = Contract.__table__.c
    minor = bindparam("minor", type_=BigInteger())
    return update(Contract.__table__).where(c.id == bindparam("cid")) \
        .values(balance=type_coerce(c.balance, BigInteger) + minor).returning(idle(), money_minor() >= 0)


@cache
def _insert_and_apply(keyed: bool, pre=None, platforms: tuple[str, ...] = ()):
    """PostgreSQL: ``_insert_entry``, ``_apply_returning`` and the posting's audit row in one
    statement, one round trip where there were three (the INSERTs data-modifying CTEs, the
    balance UPDATE and the audit row joined to what the entry's returned, so a repeat or a
    missing contract moves and records nothing), and, for a payment that leaves the rule idle,
    its payment_received notice: returns (entry id, idle, solvent, the notice's id or None), or
    no row when nothing was inserted. Parameters: the entry's columns prefixed ``e_``, the
    audit's ``a_``, minor, and the notice's paid_at and now. ``pre`` (``post_after``): an INSERT
    ... RETURNING id run first, as a CTE, that must insert its row for the posting to happen;
    the statement then returns (its id, then the above or NULLs), or no row when it inserted
    nothing. The UPDATE takes the contract's row lock as the separate UPDATE did, and
    adds to its newest balance."""
    from .blocking import idle
    from .grace import money_minor

    table, c = LedgerEntry.__table__, Contract.__table__.c
    values = select(*[bindparam("e_" + name, type_=table.c[name].type) for name in _ENTRY_COLUMNS]) \
        .where(c.id == bindparam("e_contract_id"))
    pre_row = None
    if pre is not None:
        pre_row = pre.cte("pre_row")
        # nothing without its row (a join, not a second FROM: the linter would call it a cartesian product)
        values = values.select_from(Contract.__table__.join(pre_row, pre_row.c.id.is_not(None)))
    ins = dialect_insert(table).from_select(list(_ENTRY_COLUMNS), values)
    if keyed:
        ins = ins.on_conflict_do_nothing(index_elements=["idempotency_key"])
    entry = ins.returning(table.c.id, table.c.contract_id, table.c.kind, table.c.amount, table.c.source) \
        .cte("new_entry")
    # the audit row ``post`` writes, with the new entry's id from the CTE (as audit.record writes it:
    # parameters a_at, a_actor, a_action, a_summary, a_before (None), a_amount, a_comment)
    au = AuditEntry.__table__.c
    audit_row = select(
        bindparam("a_at", type_=au.at.type), bindparam("a_actor", type_=au.actor.type),
        bindparam("a_action", type_=au.action.type), literal("contract"), entry.c.contract_id,
        bindparam("a_summary", type_=au.summary.type), bindparam("a_before", type_=au.before.type),
        json_object(literal("entry_id"), entry.c.id, literal("amount"), bindparam("a_amount", type_=String()),
                    literal("comment"), bindparam("a_comment", type_=String())),
    ).select_from(entry)
    audited = insert(AuditEntry.__table__).from_select(
        ["at", "actor", "action", "object_type", "object_id", "summary", "before", "after"], audit_row) \
        .cte("new_audit")
    minor = bindparam("minor", type_=BigInteger())
    # (the contract's id as a parameter too: the planner probes its primary key, whatever it
    # guesses of the CTE's rows)
    applied = update(Contract.__table__).where(c.id == bindparam("e_contract_id"), c.id == entry.c.contract_id) \
        .values(balance=type_coerce(c.balance, BigInteger) + minor) \
        .returning(c.id, c.subscriber_id, c.balance, idle().label("idle"), (money_minor() >= 0).label("solvent")) \
        .cte("new_balance")
    # a payment that leaves the balance rule nothing to do (idle) has its balance for the
    # payment_received notice now: the notice in the same statement (else ``post`` records it
    # after the rule, whose unblock charge changes the balance). Parameters paid_at, now.
    noticed = notices.from_select_statement(notice_events.PAYMENT_RECEIVED_COLUMNS, select(
        *notice_events.payment_received_row(entry.c.id, entry.c.amount, entry.c.source, applied.c.balance,
                                            applied.c.subscriber_id, applied.c.id))
        .select_from(entry.join(applied, applied.c.id == entry.c.contract_id))
        .where(applied.c.idle, entry.c.kind == "payment")).cte("new_notice")
    # the outbox rows ``notify_contract`` writes (platforms that show the balance hear of the new
    # money), for the accounts of the new entry's contract: one row each per platform it is on
    # (outbox.platforms_query, the rule's one place), written as enqueued (parameters o_reason,
    # o_now); RETURNING what outbox's after-commit hand-off needs
    o = OutboxEvent.__table__.c
    accounts = select(Account.id).where(Account.contract_id == entry.c.contract_id).correlate(None)
    pairs = platforms_query(accounts)
    o_now = bindparam("o_now", type_=o.created_at.type)
    told = insert(OutboxEvent.__table__).from_select(
        ["account_id", "platform", "reason", "created_at", "enqueued_at"],
        select(pairs.c.account_id, pairs.c.platform, bindparam("o_reason", type_=String()), o_now, o_now),
    ).returning(o.id, o.account_id, o.platform, o.reason).cte("new_outbox")
    posted = entry.join(applied, applied.c.id == entry.c.contract_id).outerjoin(told, true())
    columns = [entry.c.id, applied.c.idle, applied.c.solvent, select(noticed.c.id).scalar_subquery(),
               told.c.id, told.c.account_id, told.c.platform, told.c.reason]
    if pre_row is not None:
        return select(pre_row.c.id, *columns).select_from(pre_row.outerjoin(posted, true())).add_cte(audited)
    return select(*columns).select_from(posted).add_cte(audited)


def source_of(actor: str | None, key: str | None) -> str:
    """A payment's source read off its author and key, for a path that does not name it (and,
    frozen as SQL, for the payments of before: migration d124c2daebf3)."""
    key, actor = key or "", actor or ""
    if key.startswith("agent:"):
        return PAYMENT_AGENT
    if key.startswith("bank:"):
        return PAYMENT_STATEMENT
    if key.startswith("yookassa:") or actor == "platform:yookassa":
        return PAYMENT_ONLINE
    if actor.startswith("api:"):
        return PAYMENT_API
    return PAYMENT_CASH


def post(contract_id: int, kind: str, amount: Decimal, *, actor: str, comment: str | None = None,
         idempotency_key: str | None = None, apply_rules: bool = True, source: str | None = None,
         cashier_id: int | None = None, reason: str | None = None,
         cancels_id: int | None = None, as_id: bool = False) -> tuple[LedgerEntry, bool]:
    """Post one entry. Returns (entry, created); an already used idempotency key returns the
    first entry and moves no money. A payment names its ``source`` (models.ledger
    PAYMENT_SOURCES; read off actor and key when not given) and, typed in by staff, its
    ``cashier_id``. ``as_id``: return (the entry's id, created) instead, for a caller that does
    not use the entry (an agent's pay): building the ORM object and adding it to the session
    cost about 150 Python calls, a tenth of the posting."""
    _, posted, created = _post(None, None, contract_id, kind, amount, actor=actor, comment=comment,
                               idempotency_key=idempotency_key, apply_rules=apply_rules, source=source,
                               cashier_id=cashier_id, reason=reason, cancels_id=cancels_id, as_id=as_id)
    return posted, created


def post_after(pre, pre_params: dict, contract_id: int, kind: str, amount: Decimal, *, actor: str,
               **options) -> tuple[int | None, int | LedgerEntry | None, bool]:
    """``post``, if and only if ``pre`` (an INSERT ... ON CONFLICT DO NOTHING RETURNING id, with
    ``pre_params``: its parameters' names must not be the entry's; the agent payment's row) inserts
    its row: on PostgreSQL in the posting's one statement (one round trip less), elsewhere just
    before it. Returns (pre's new id, then ``post``'s (entry, created)), or (None, None, False)
    when pre inserted nothing (then nothing is posted)."""
    return _post(pre, pre_params, contract_id, kind, amount, actor=actor, **options)


def _post(pre, pre_params: dict | None, contract_id: int, kind: str, amount: Decimal, *, actor: str,
          comment: str | None = None, idempotency_key: str | None = None, apply_rules: bool = True,
          source: str | None = None, cashier_id: int | None = None, reason: str | None = None,
          cancels_id: int | None = None, as_id: bool = False):
    if kind not in SIGN_RULES:
        raise BillingError({"kind": f"must be one of {', '.join(SIGN_RULES)}"})
    if kind == "payment":
        source = source or source_of(actor, idempotency_key)
        if source not in PAYMENT_SOURCES:
            raise BillingError({"source": f"must be one of {', '.join(PAYMENT_SOURCES)}"})
    else:
        source = cashier_id = None
    amount = parse_amount(amount)
    columns = LedgerEntry.__table__.c
    if comment is not None:
        inputs.parse_text(comment, "comment", inputs.text_limit(columns.comment))
    if idempotency_key is not None:  # made from an external payment id: named as that field
        inputs.parse_text(idempotency_key, "external_id", inputs.text_limit(columns.idempotency_key))
    sign = SIGN_RULES[kind]
    if amount == 0 or (sign and (amount > 0) != (sign > 0)):
        raise BillingError({"amount": "must be positive" if sign >= 0 else "must be negative"} if sign
                           else {"amount": "must not be zero"})
    if not isinstance(contract_id, int):
        raise NotFound({"contract_id": "no such contract"})
    values = dict(contract_id=contract_id, kind=kind, amount=amount, comment=comment, author=actor,
                  idempotency_key=idempotency_key, created_at=utcnow(), source=source, cashier_id=cashier_id,
                  reason=reason, cancels_id=cancels_id)
    dialect = db.session.get_bind().dialect.name
    applied, pre_id = None, None
    if dialect == "postgresql":
        rows = driver_sql.rows(_insert_and_apply(bool(idempotency_key), pre, tuple(known_platforms())), {
            **{"e_" + k: v for k, v in values.items()}, "minor": to_minor(amount),
            "a_at": utcnow(), "a_actor": actor or "system", "a_action": f"ledger.{kind}",
            "a_summary": f"{kind} {amount}"[:500], "a_before": None, "a_amount": str(amount),
            "a_comment": comment, **notice_events.payment_received_params(), "o_reason": f"ledger.{kind}"[:64],
            "o_now": utcnow(), **(pre_params or {})})
        if pre is not None:
            if not rows:
                return None, None, False
            pre_id = rows[0][0]
            rows = [tuple(r[1:]) for r in rows] if rows[0][1] is not None else []
        applied = rows[0][:4] if rows else None
        if rows and rows[0][4] is not None:  # the outbox rows, for the after-commit hand-off
            remember(r[4:] for r in rows)
        new_id = applied[0] if applied is not None else None
    else:
        if pre is not None:
            pre_id = db.session.execute(pre, pre_params).scalar()
            if pre_id is None:
                return None, None, False
        new_id = db.session.execute(_insert_entry(dialect, bool(idempotency_key)), values).scalar()
    if new_id is None:  # no such contract, or the key was used (by a parallel request that committed first)
        first = db.session.scalar(select(LedgerEntry).filter_by(idempotency_key=idempotency_key)) \
            if idempotency_key else None
        if first is None or (first.contract_id != contract_id and db.session.get(Contract, contract_id) is None):
            raise NotFound({"contract_id": "no such contract"})
        first = _same_or_conflict(first, contract_id, amount)
        return pre_id, (first.id if as_id else first), False
    entry = None
    if not as_id:
        # the entry as if read back: no SELECT for what this statement just wrote
        entry = LedgerEntry(id=new_id, **values, **{k: None for k in _UNSET})
        make_transient_to_detached(entry)
        db.session.add(entry)
    if applied is not None:
        idle, solvent = applied[1], applied[2]
    else:
        idle, solvent = db.session.execute(_apply_returning(), {"cid": contract_id, "minor": to_minor(amount)}).one()
    contract = db.session.identity_map.get(identity_key(Contract, contract_id))
    if contract is not None:
        db.session.expire(contract, ["balance"])
    if applied is None:  # (on PostgreSQL the statement above wrote it)
        audit.record(actor, f"ledger.{kind}", None, f"{kind} {amount}", object_type="contract",
                     object_id=contract_id, after={"entry_id": new_id, "amount": str(amount), "comment": comment})
    if apply_rules and not idle:
        from .charging import apply_balance_rule

        apply_balance_rule([contract_id], actor=actor, solvent=solvent)
    # platforms that show the balance (webhook, IPTV middleware) hear of the new money (on
    # PostgreSQL the statement above wrote their outbox rows)
    if applied is None:
        from .outbox import notify_contract

        notify_contract(contract_id, f"ledger.{kind}")
    if applied is not None and applied[1]:  # (recorded by the statement above, for a payment)
        notices.remember([applied[3]] if applied[3] is not None else [])
    elif kind == "payment":
        notice_events.payments_received([new_id])
    return pre_id, (new_id if as_id else entry), True


_UNSET = [c.key for c in LedgerEntry.__table__.c if c.key not in _ENTRY_COLUMNS and c.key != "id"]


def _same_or_conflict(first: LedgerEntry, contract_id: int, amount: Decimal) -> LedgerEntry:
    if first.contract_id != contract_id or first.amount != amount:
        raise BillingError({"external_id": "already used for a different payment"})
    return first


def payment(contract_id: int, amount, *, actor: str, external_id: str | None = None,
            comment: str | None = None, source: str | None = None) -> tuple[LedgerEntry, bool]:
    """A payment from outside; ``external_id`` makes a repeat harmless."""
    key = f"payment:{external_id}" if external_id else None
    return post(contract_id, "payment", amount, actor=actor, comment=comment, idempotency_key=key, source=source)


STORNO_KEY = "storno:"


def storno(entry_id, reason_text, *, actor: str) -> tuple[LedgerEntry, bool]:
    """Cancel a payment: a new entry of the opposite amount (reason ``storno``, naming the
    payment, the staff member's reason as its comment); the payment itself is never changed.
    One per payment: its key (and the unique ``cancels_id``) makes a double click or a parallel
    request answer the first storno, moving nothing. Returns (storno entry, created). The balance
    rule runs as for any entry (post): cancelling may block the contract again."""
    errors = {}
    text = reason_text.strip() if isinstance(reason_text, str) else ""
    if not text:
        errors["reason"] = "required"
    else:
        try:
            inputs.parse_text(text, "reason", inputs.text_limit(LedgerEntry.__table__.c.comment))
        except BillingError as e:
            errors.update(e.fields)
    paid = None
    try:
        paid = db.session.get(LedgerEntry, int(entry_id))
    except (TypeError, ValueError):
        pass
    if paid is None or paid.kind != "payment":
        raise NotFound({"payment": "no such payment", **errors})
    if errors:
        raise BillingError(errors)
    return post(paid.contract_id, "correction", -paid.amount, actor=actor, comment=text,
                idempotency_key=f"{STORNO_KEY}{paid.id}", reason="storno", cancels_id=paid.id)


def stornos_of(entry_ids) -> dict[int, LedgerEntry]:
    """The storno of each of these payments that has one, by the payment's id."""
    ids = list(entry_ids)
    if not ids:
        return {}
    return {e.cancels_id: e for e in db.session.scalars(select(LedgerEntry).where(LedgerEntry.cancels_id.in_(ids)))}



def post_payments(rows: list[dict], *, actor: str, chunk: int = 1000) -> dict[str, int]:
    """Many payments from outside at once (a bank statement): ``rows`` of contract_id, amount
    (positive Decimal), idempotency_key (required) and comment. ``post``'s rule set-based: a key
    already used moves no money (ON CONFLICT DO NOTHING, so parallel posters cannot post twice);
    per chunk one multi-row INSERT (each payment's source read off its key, as ``post`` does),
    one balance UPDATE for the chunk's contracts, the audit rows in one executemany, then the
    balance rule (unblocking) and the outbox once for the chunk's contracts.
    Returns {key: ledger entry id} of the entries this call created."""
    for r in rows:
        if not r.get("idempotency_key"):
            raise BillingError({"external_id": "required"})
        if parse_amount(r["amount"]) <= 0:
            raise BillingError({"amount": "must be positive"})
    # one order of keys (and so of unique-index and row locks) for every poster: two statements
    # posted at once in different orders would deadlock on PostgreSQL
    rows = sorted(rows, key=lambda r: r["idempotency_key"])
    table, c = LedgerEntry.__table__, Contract.__table__.c
    created: dict[str, int] = {}
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        now = utcnow()
        stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"]) \
            .returning(table.c.id, table.c.idempotency_key, table.c.contract_id, table.c.amount)
        new = db.session.execute(stmt, [dict(contract_id=r["contract_id"], kind="payment", amount=r["amount"],
                                              comment=r.get("comment"), author=actor, created_at=now,
                                              idempotency_key=r["idempotency_key"],
                                              source=source_of(actor, r["idempotency_key"])) for r in part]).all()
        if not new:
            continue
        sums: dict[int, int] = {}
        for entry_id, key, contract_id, amount in new:
            created[key] = entry_id
            sums[contract_id] = sums.get(contract_id, 0) + to_minor(amount)
        # one UPDATE for the chunk: each contract's balance plus its sum (a CASE by id)
        db.session.execute(update(Contract.__table__).where(c.id.in_(list(sums))).values(
            balance=type_coerce(c.balance, BigInteger) + case(
                {k: literal(v, BigInteger) for k, v in sums.items()}, value=c.id)))
        audit.record_many([dict(actor=actor, action="ledger.payment", object_type="contract", object_id=contract_id,
                                summary=f"payment {amount}",
                                after={"entry_id": entry_id, "amount": str(amount), "key": key})
                           for entry_id, key, contract_id, amount in new])
        contract_ids = sorted(sums)
        from .charging import apply_balance_rule
        from .outbox import notify

        apply_balance_rule(contract_ids, actor=actor)
        notify(db.session.scalars(select(Account.id).where(Account.contract_id.in_(contract_ids))).all(),
               "ledger.payment")
    notice_events.payments_received(created.values())
    db.session.expire_all()  # cached balances of loaded contracts changed in SQL
    return created


# -- reading ------------------------------------------------------------------------------------

@dataclass
class LedgerLine:
    id: int
    created_at: datetime
    kind: str
    amount: Decimal
    comment: str | None
    service: str | None        # for charges and refunds: which service ...
    period_start: date | None  # ... for which period
    account: str | None        # ... on which account (login)
    author: str | None         # who posted it (staff:<login>, api:<token>, system, ...)
    balance_after: Decimal     # the running balance right after this entry
    reason: str | None = None  # the change that posted it (LedgerEntry.reason)
    by_run: bool = False       # posted by the charge run
    key: str | None = None     # the idempotency key (payment id, upsale transaction)


def ledger_page(contract: Contract, before: int | None = None, limit: int = 30) -> dict:
    """Ledger entries newest first, a keyset page at a time (``before``: the last id shown).

    The running balance after the newest entry on the page is the contract's balance minus
    every entry newer than it, read in one statement (one snapshot, so a payment posted
    meanwhile is in both or in neither); the sum runs over the index (contract_id, id) from the
    top, so the first pages cost the same on a contract of any age."""
    query = (
        select(LedgerEntry, CatalogService.name, Account.login)
        .outerjoin(AssignedService, AssignedService.id == LedgerEntry.assigned_service_id)
        .outerjoin(CatalogService, CatalogService.id == AssignedService.service_id)
        .outerjoin(Account, Account.id == AssignedService.account_id)
        .where(LedgerEntry.contract_id == contract.id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    rows = db.session.execute(query).all()[: limit + 1]
    lines: list[LedgerLine] = []
    if rows:
        e, c = LedgerEntry.__table__.c, Contract.__table__.c
        newer = select(func.coalesce(func.sum(type_coerce(e.amount, BigInteger)), 0)) \
            .where(e.contract_id == contract.id, e.id > rows[0][0].id).scalar_subquery()
        running = from_minor(db.session.execute(
            select(type_coerce(c.balance, BigInteger) - newer).where(c.id == contract.id)).scalar())
        for entry, service, login in rows[:limit]:
            lines.append(LedgerLine(entry.id, entry.created_at, entry.kind, entry.amount, entry.comment,
                                    service, entry.period_start, login, entry.author, running, entry.reason,
                                    entry.charge_run_id is not None, entry.idempotency_key))
            running -= entry.amount
    return {"items": lines, "next_before": lines[-1].id if len(rows) > limit else None}
