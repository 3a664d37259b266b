"""The charge run: set-based SQL that posts, for every assigned service and the month of the
run date, the difference between what is due and what is already posted.

How "due" is worked out (DESIGN.md, charging rules). Per (service, month) we keep the set of
paid days as a bit mask (bit d = day d). At a run on day D:

* ``since`` is the first day of the month from which the present state holds: the latest
  of the month's first day, the service's start, the account's last status change and the
  service's last state change. Nothing is known about days before ``since`` any more, so the
  days already paid there stay paid ("frozen").
* If the service is billable now (account active, service active and in force on D), the days
  from ``since`` to the end of the month (monthly in advance) or to D (daily pro rata) are due.
* If the account is blocked by balance only, the days already paid from ``since`` on stay paid
  (a balance block refunds nothing, so a payment that lifts it charges only unpaid days).
* Otherwise (manager or subscriber block, suspension, disabling) the days from ``since`` on are
  refunded.
* Days after the service's end (``ends_on``) are never due.

The amount for a set of days: monthly in advance: price x days / days-in-month, half-up; daily
pro rata: each day price / days-in-month half-up, the month's last day takes the remainder so a
whole month is exactly the price; a per-day service: price x days.

The (service, month) row is upserted with ON CONFLICT ... WHERE amount differs, which holds a
row lock and makes a second or parallel run post nothing.
"""
from __future__ import annotations

from datetime import date
from functools import cache

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    extract,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from ..db_setup import dialect_insert
from ..extensions import db, expire_loaded
from ..models import (
    Account,
    AssignedService,
    CatalogService,
    ChargePeriod,
    ChargeRun,
    Contract,
    LedgerEntry,
    utcnow,
)
from ..models.base import UTCDateTime, from_minor
from . import audit, clock, driver_sql, notice_events
from .blocking import balance_rule, idle, is_idle
from .outbox import notify


class greatest(GenericFunction):  # noqa: N801  (SQL function name)
    type = Integer()
    inherit_cache = True


class least(GenericFunction):  # noqa: N801
    type = Integer()
    inherit_cache = True


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(least, "sqlite")
def _least_sqlite(element, compiler, **kw):
    return f"min({compiler.process(element.clauses, **kw)})"


def _op(a, op, b):
    return a.op(op, precedence=100)(b).self_group()


def _shl1(n):
    """2^n as a BIGINT (1 << n)."""
    return _op(cast(literal(1), BigInteger), "<<", cast(n, Integer))


def _upto(e):
    """Bits 1..e set (days 1..e); 0 when e <= 0."""
    return case((e <= 0, literal(0, BigInteger)), else_=_shl1(e + 1) - 2)


def _below(s):
    """Bits 1..s-1 set (days before s)."""
    return case((s <= 1, literal(0, BigInteger)), else_=_shl1(s) - 2)


def _range(a, b):
    return case((b >= a, _upto(b) - _below(a)), else_=literal(0, BigInteger))


def _and(a, b):
    return _op(a, "&", b)


def _or(a, b):
    return _op(a, "|", b)


def _shr(a, n):
    return _op(a, ">>", literal(n, Integer) if isinstance(n, int) else cast(n, Integer))


def _day_of_month(col):
    return cast(extract("day", col), Integer)


class bit_count(GenericFunction):  # noqa: N801  (SQL function name)
    """Number of days in a mask. SQLite gets a Python function (portal.db_setup)."""

    type = Integer()
    inherit_cache = True


@compiles(bit_count, "postgresql")
def _bit_count_pg(element, compiler, **kw):
    return f"bit_count(CAST({compiler.process(element.clauses, **kw)} AS BIT(32)))"


def _fenced(select_stmt, name: str):
    """A subquery the planner computes once per row instead of pasting its expressions into
    every place the outer query uses them (OFFSET 0 stops PostgreSQL and SQLite flattening it)."""
    return select_stmt.offset(0).subquery(name)


# The posting statement is built once per process and (dialect, scoped) and run with these
# parameters: building its expression tree anew cost more than running it for one account.
def _p(name: str, type_):
    return bindparam(name, type_=type_)


def amount_sql(per, mode, price, days, last, dim):
    """Kopecks due for ``days`` days of a month of ``dim`` days (``last``: 1 if the month's last
    day is among them), as SQL: the charging rules' amounts, in one place for the charge run and
    the balance forecast (billing.forecast); ``prorate.amount`` is its Python twin. Integer
    division: every operand is an integer."""
    daily = (2 * price + dim) // (2 * dim)
    return case(
        (per == "day", price * days),
        (mode == "daily_prorata", days * daily + last * (price - dim * daily)),
        else_=(2 * price * days + dim) // (2 * dim),
    )


def _due_query(scoped: bool | str):
    """SELECT (sid, period_start, contract_id, mask, due) for rows whose due amount changed.

    Parameters: run_date, ps / pe (the month's first and last day), dim (days in the month),
    day (the run date's day) and, when ``scoped``, ids (the accounts); ``scoped="one"``: the
    one account ``one_id`` (a change's charge: an expanding IN list makes SQLAlchemy rewrite
    this 7 kB statement's text at every execution)."""
    run_date, ps, pe = _p("run_date", Date()), _p("ps", Date()), _p("pe", Date())
    dim, d = _p("dim", Integer()), _p("day", Integer())
    s, a, c = AssignedService.__table__.c, Account.__table__.c, CatalogService.__table__.c
    cp = ChargePeriod.__table__.alias("cp")
    zero = literal(0, BigInteger)

    # layer 0: the facts of each (service, month) row, as small integers and flags
    billable = and_(a.status == "active", s.state == "active", s.starts_on <= run_date,
                    or_(s.ends_on.is_(None), s.ends_on >= run_date))
    end_day = case((s.ends_on.is_(None), dim), (s.ends_on > pe, dim), (s.ends_on < ps, 0),
                   else_=_day_of_month(s.ends_on))
    # the present state holds since the latest of: start, account status change, service state change
    since_date = greatest(s.starts_on, func.coalesce(a.status_changed_on, s.starts_on),
                          func.coalesce(s.state_changed_on, s.starts_on), type_=Date())
    facts = (
        select(
            s.id.label("sid"), a.contract_id.label("contract_id"),
            type_coerce(c.price, BigInteger).label("price"),
            c.charge_period.label("per"), c.charge_mode.label("mode"),
            case((since_date > ps, _day_of_month(since_date)), else_=1).label("since"),
            end_day.label("end_day"),
            case((c.charge_mode == "daily_prorata", d), else_=dim).label("cover_to"),
            case((billable, 1), else_=0).label("billable"),
            case((and_(a.status == "blocked", a.block_reasons == 1, s.state == "active"), 1),
                 else_=0).label("balance_only"),
            func.coalesce(cp.c.days_mask, zero).label("old_mask"),
            func.coalesce(cp.c.amount, zero).label("old_amount"),
        )
        .select_from(AssignedService.__table__.join(Account.__table__, a.id == s.account_id))
        .join(CatalogService.__table__, c.id == s.service_id)
        .outerjoin(cp, and_(cp.c.assigned_service_id == s.id, cp.c.period_start == ps))
        .where(
            s.starts_on <= pe,
            or_(s.ends_on.is_(None), s.ends_on >= ps, cp.c.assigned_service_id.is_not(None)),
            or_(billable, cp.c.assigned_service_id.is_not(None)),
        )
    )
    if scoped == "one":
        facts = facts.where(s.account_id == bindparam("one_id", type_=Integer()))
    elif scoped:
        facts = facts.where(s.account_id.in_(bindparam("ids", expanding=True)))
    f = _fenced(facts, "f")

    # layer 1: the target set of paid days
    frozen = _and(f.c.old_mask, _below(f.c.since))
    cover = least(f.c.cover_to, f.c.end_day)
    mask = _and(
        _or(_or(frozen, case((f.c.billable == 1, _range(f.c.since, cover)), else_=zero)),
            case((f.c.balance_only == 1, f.c.old_mask - frozen), else_=zero)),
        _upto(f.c.end_day),
    )
    t = _fenced(select(f.c.sid, f.c.contract_id, f.c.price, f.c.per, f.c.mode, f.c.old_mask, f.c.old_amount,
                       mask.label("mask")), "t")
    q = _fenced(select(t, bit_count(t.c.mask).label("days")), "q")

    # layer 2: the amount due for those days (integer division: both operands are integers)
    due = amount_sql(q.c.per, q.c.mode, q.c.price, q.c.days, _and(_shr(q.c.mask, dim), 1), dim)
    q4 = _fenced(select(q.c.sid, q.c.contract_id, q.c.mask, q.c.old_mask, q.c.old_amount,
                        due.label("due")), "q4")
    return select(q4.c.sid, ps.label("period_start"), q4.c.contract_id, q4.c.mask,
                  q4.c.due).where(or_(q4.c.due != q4.c.old_amount, q4.c.mask != q4.c.old_mask))


def _upsert(due_select):
    """Parameter run_id: the run's id, or NULL for a change's charge (``charge_accounts``)."""
    cp = ChargePeriod.__table__
    src = due_select.subquery("due")
    ins = dialect_insert(cp).from_select(
        ["assigned_service_id", "period_start", "contract_id", "days_mask", "amount", "delta", "run_id"],
        select(src.c.sid, src.c.period_start, src.c.contract_id, src.c.mask, src.c.due, src.c.due,
               _p("run_id", Integer())).where(literal(True)).order_by(src.c.sid),
    )
    ins = ins.on_conflict_do_update(
        index_elements=["assigned_service_id", "period_start"],
        set_={"days_mask": ins.excluded.days_mask, "amount": ins.excluded.amount,
              "delta": ins.excluded.amount - cp.c.amount, "run_id": ins.excluded.run_id,
              "contract_id": ins.excluded.contract_id},
        where=or_(cp.c.amount != ins.excluded.amount, cp.c.days_mask != ins.excluded.days_mask),
    )
    return ins.returning(cp.c.assigned_service_id, cp.c.period_start, cp.c.contract_id, cp.c.delta)


@cache
def _expiry_statement(scoped: bool | str):
    """``scoped="one"``: the one account ``one_id`` (a plain parameter: an expanding IN list is
    rendered again at each execution)."""
    s = AssignedService.__table__.c
    stmt = (update(AssignedService.__table__)
            .where(s.state != "ended", s.ends_on < _p("run_date", Date()))
            .values(state="ended", state_changed_on=_p("run_date", Date()))
            .returning(s.account_id))
    if scoped == "one":
        return stmt.where(s.account_id == _p("one_id", Integer()))
    return stmt.where(s.account_id.in_(bindparam("ids", expanding=True))) if scoped else stmt


def expire_services(run_date: date, account_ids=None, actor: str = "system") -> list[int]:
    """Services past their end date end by themselves; returns the accounts touched."""
    if account_ids is not None and len(account_ids := list(account_ids)) == 1:
        # one account (a change, an unblock): by the driver (driver_sql)
        found = driver_sql.rows(_expiry_statement("one"), {"run_date": run_date, "one_id": account_ids[0]})
        touched = sorted({r[0] for r in found})
    else:
        scoped = account_ids is not None
        params = {"run_date": run_date, **({"ids": account_ids} if scoped else {})}
        touched = sorted(set(db.session.execute(_expiry_statement(scoped), params).scalars()))
    if touched:
        ended = set(touched)
        expire_loaded(AssignedService, ["state", "state_changed_on"], lambda s: s.account_id in ended)
        notify(touched, "service.expired")
        notice_events.services_expired(touched, run_date)
        audit.record(actor, "service.expire", None, f"{len(touched)} account(s) had services expire",
                     after={"account_ids": touched[:1000]}, object_type="system")
    return touched


def _keyed(up, param: str):
    """The keyed service's charge carries the caller's idempotency key and comment (parameters
    key_sid, key, key_comment; NULL for every other row and when no service is keyed)."""
    return case((and_(up.c.assigned_service_id == _p("key_sid", Integer()), up.c.delta > 0),
                 _p(param, String())), else_=None)


def _post_pg(upsert, with_idle: bool = False):
    """PostgreSQL: upsert, ledger rows and balances in one statement (data-modifying CTEs).
    Parameters beside the due query's: now, actor, key_sid, key, key_comment, reason.
    ``with_idle``: a fifth column, whether the balance rule is idle (blocking.idle) on every
    contract whose balance moved, read off the updated rows; NULL when none moved (a change's
    charge: the rule's check then needs no statement of its own; not for the charge run, where
    it would be a subquery per contract)."""
    led_t, con = LedgerEntry.__table__, Contract.__table__
    up = upsert.cte("up")
    led = (
        insert(led_t).from_select(
            ["contract_id", "kind", "amount", "created_at", "author", "assigned_service_id", "period_start",
             "charge_run_id", "idempotency_key", "comment", "reason"],
            select(up.c.contract_id, case((up.c.delta > 0, "charge"), else_="refund"), -up.c.delta,
                   _p("now", UTCDateTime()), _p("actor", String()), up.c.assigned_service_id, up.c.period_start,
                   _p("run_id", Integer()), _keyed(up, "key"), _keyed(up, "key_comment"),
                   _p("reason", String())).where(up.c.delta != 0),
        ).returning(led_t.c.contract_id, type_coerce(led_t.c.amount, BigInteger).label("amount"))
    ).cte("led")
    # in contract order, so the UPDATE walks `contracts` in index order (as fast as the floor)
    totals = (select(led.c.contract_id, func.sum(led.c.amount).label("total"))
              .group_by(led.c.contract_id).order_by(led.c.contract_id).subquery())
    bal = (
        update(con).where(con.c.id == totals.c.contract_id)
        .values(balance=type_coerce(con.c.balance, BigInteger) + totals.c.total)
        .returning(con.c.id, *([idle().label("idle")] if with_idle else []))
    ).cte("bal")
    amount = led.c.amount
    return select(
        func.count(),
        func.coalesce(func.sum(case((amount < 0, -amount), else_=0)), 0),
        func.coalesce(func.sum(case((amount > 0, amount), else_=0)), 0),
        select(func.count()).select_from(bal).scalar_subquery(),
        # (when no balance moved, the contract as this statement found it, parameter idle_contract_id:
        # nothing here changed what blocking.idle reads, so no SELECT of its own is needed after)
        *([func.coalesce(select(func.bool_and(bal.c.idle)).scalar_subquery(),
                         select(idle()).where(con.c.id == _p("idle_contract_id", Integer())).scalar_subquery())]
          if with_idle else []),
    ).select_from(led)



@cache
def _statement(dialect: str, scoped: bool | str):
    """The posting statement for this dialect, built on first use: on PostgreSQL all of it in
    one statement, elsewhere the upsert (the ledger rows and balances follow in Python)."""
    upsert = _upsert(_due_query(scoped))
    return _post_pg(upsert, with_idle=scoped == "one") if dialect == "postgresql" else upsert


def _post(run_date: date, account_ids, run_id: int | None, actor: str,
          keyed: tuple[int, str, str] | None = None, reason: str | None = None,
          contract_id: int | None = None) -> tuple[int, int, int]:
    """Post what is due on ``run_date`` for all accounts or the given ones, and move the
    balances; returns (entries, charged, refunded) in minor units. ``keyed``: (assigned service
    id, idempotency key, comment) for that service's charge. ``reason``: the change that made
    these entries due (kept on each, see LedgerEntry.reason)."""
    dialect = db.session.get_bind().dialect.name
    key_sid, key, key_comment = keyed or (None, None, None)
    params = {"run_date": run_date, "ps": clock.month_start(run_date), "pe": clock.month_end(run_date),
              "dim": clock.days_in_month(run_date), "day": run_date.day, "run_id": run_id, "actor": actor,
              "now": utcnow(), "key_sid": key_sid, "key": key, "key_comment": key_comment,
              "reason": reason[:32] if reason else None}
    scoped: bool | str = account_ids is not None
    if scoped:
        account_ids = list(account_ids)
        if len(account_ids) == 1:
            scoped, params["one_id"] = "one", account_ids[0]
        else:
            params["ids"] = account_ids
    stmt = _statement(dialect, scoped)
    idle_after = None
    if dialect == "postgresql":
        # run by the driver (driver_sql) unless it has the expanding IN list of several accounts
        if scoped == "one":
            params["idle_contract_id"] = contract_id  # (NULL: charge_accounts does not ask)
        row = db.session.execute(stmt, params).one() if "ids" in params else driver_sql.rows(stmt, params)[0]
        entries, charged, refunded = row[:3]
        if scoped == "one":
            idle_after = row[4]
    else:
        rows = db.session.execute(stmt, params).all()
        posted = [r for r in rows if r.delta]
        if posted:
            def _key(r, value):
                return value if r.assigned_service_id == key_sid and r.delta > 0 else None

            db.session.execute(
                text("INSERT INTO ledger_entries (contract_id, kind, amount, created_at, author, "
                     "assigned_service_id, period_start, charge_run_id, idempotency_key, comment, reason) "
                     "VALUES (:c, :k, :a, :now, :actor, :s, :p, :r, :key, :comment, :reason)"),
                [{"c": r.contract_id, "k": "charge" if r.delta > 0 else "refund", "a": -r.delta, "now": params["now"],
                  "actor": actor, "s": r.assigned_service_id, "p": r.period_start, "r": run_id,
                  "key": _key(r, key), "comment": _key(r, key_comment), "reason": params["reason"]}
                 for r in posted],
            )
            totals: dict[int, int] = {}
            for r in posted:
                totals[r.contract_id] = totals.get(r.contract_id, 0) - r.delta
            db.session.execute(
                update(Contract.__table__).where(Contract.__table__.c.id == text(":cid"))
                .values(balance=type_coerce(Contract.__table__.c.balance, BigInteger) + text(":amt")),
                [{"cid": k, "amt": v} for k, v in totals.items()],
            )
        entries = len(posted)
        charged = sum(r.delta for r in posted if r.delta > 0)
        refunded = -sum(r.delta for r in posted if r.delta < 0)
    if entries:  # balances moved in SQL
        expire_loaded(Contract, ["balance"])
    return entries, charged, refunded, idle_after


def charge(run_date: date | None = None, *, actor: str = "system") -> ChargeRun:
    """The charge run for ``run_date`` (default today) over every account, then the balance
    rule; recorded as a charge run and audited."""
    run_date = run_date or clock.today()
    with clock.as_of(run_date):
        return _charge(run_date, actor)


def charge_accounts(account_ids, *, actor: str, keyed: tuple[int, str, str] | None = None,
                    expire: bool = True, reason: str | None = None) -> int:
    """Post today, at once, what a change to these accounts made due or refundable: the charge
    run's rules and statement for just them, without a run record (the ledger rows name their
    service and period; the caller audits the change itself). Returns the entries posted.

    ``keyed``: (assigned service id, idempotency key, comment): that service's charge is posted
    with the key of the request that bought it (an upsale transaction), so the ledger itself
    refuses to take it twice; the key is set as the row is written, never afterwards.
    ``expire=False``: the caller knows no service of these accounts is past its end date.
    ``reason``: the change, as the audit log names it (account.block, service.end, ...): each
    entry keeps it, so that the ledger can say what a refund was for."""
    ids = list(account_ids)
    return _charge_now(ids, actor, keyed, expire, reason)[0] if ids else 0


def _charge_now(ids: list[int], actor: str, keyed, expire: bool, reason: str | None,
                contract_id: int | None = None) -> tuple:
    today = clock.today()
    if expire:
        expire_services(today, ids, actor)
    return _post(today, ids, None, actor, keyed, reason, contract_id)


def charge_one_contract(contract_id: int, account_ids, *, actor: str, keyed: tuple[int, str, str] | None = None,
                        expire: bool = True, reason: str | None = None) -> bool:
    """``charge_accounts`` for accounts of one contract, then whether the balance rule is idle on
    that contract (blocking.idle): read by the posting statement (on PostgreSQL, for one account:
    off the balance it moved, or, when it moved none, off the contract as it found it), else by
    ``is_idle``'s small SELECT."""
    ids = list(account_ids)
    idle_after = _charge_now(ids, actor, keyed, expire, reason, contract_id)[3] if ids else None
    return is_idle(contract_id) if idle_after is None else bool(idle_after)


def apply_balance_rule(contract_ids: list[int] | None = None, *, actor: str = "system",
                       solvent: bool = False) -> tuple[list[int], list[int]]:
    """The balance rule (``blocking.balance_rule``: block and unblock by balance), and the days
    an unblock gives back charged at once; returns (blocked account ids, unblocked account ids)
    of the rule's first pass. A balance block refunded nothing, so only days not yet paid for
    are charged, and the run cannot swing back and forth. ``solvent``: see balance_rule (the
    first pass only: the unblock's charge may take the money below again)."""
    blocked, unblocked = balance_rule(contract_ids, actor=actor, solvent=solvent)
    if unblocked:
        # what that charge took may block again; for one contract (a payment) the charge tells
        # whether the rule has anything left to do (blocking.idle): the common unblock leaves the
        # contract at zero or above, and the rule's three statements would do nothing
        if contract_ids is not None and len(contract_ids) == 1:
            if not charge_one_contract(contract_ids[0], unblocked, actor=actor, reason="account.unblock"):
                balance_rule(contract_ids, actor=actor)
        else:
            charge_accounts(unblocked, actor=actor, reason="account.unblock")
            balance_rule(contract_ids, actor=actor)
    return blocked, unblocked


def _charge(run_date: date, actor: str) -> ChargeRun:
    expire_services(run_date, None, actor)
    run = ChargeRun(run_date=run_date, scope="all")
    db.session.add(run)
    db.session.flush()
    entries, charged, refunded, _ = _post(run_date, None, run.id, actor)
    run.entries, run.charged, run.refunded = entries, from_minor(charged), from_minor(refunded)
    blocked, _unblocked = apply_balance_rule(None, actor=actor)  # lifted blocks are charged there
    run.blocked = len(blocked)
    run.finished_at = utcnow()
    audit.record(actor, "billing.charge_run", run, f"charge run {run_date}: {entries} entries",
                 after={"charged": str(run.charged), "refunded": str(run.refunded), "blocked": run.blocked},
                 object_type="charge_run")
    return run
