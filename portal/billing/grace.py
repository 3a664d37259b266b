"""Grace before the balance block, and "do not block until <date>".

**Grace.** An operator-wide rule (``GraceRule`` row 1, admin-edited; 0 days = block at once, as
before) that a contract may override (``Contract.grace_days``; NULL = the operator's rule): a
contract is blocked by balance only once it has been below its credit limit for that many days.
The balance rule's own statements (portal.billing.blocking) keep ``Contract.below_limit_since``,
the first day (BILLING_TZ) of the present stretch below the limit: set when balance + credit
limit goes below zero, cleared when it is back at zero or above. The block falls on
``below_limit_since + N`` days: below since 31 January with 1 day of grace, blocked on 1 February
(the run that day; the day changes at midnight in BILLING_TZ, not in UTC).

**Hold-until.** ``Contract.do_not_block_until``: beside the permanent "do not block", a last day
(inclusive, BILLING_TZ) until which the balance rule neither blocks the contract nor keeps its
balance block; from the next day on the rule ignores it, so it ends by itself with nothing to
clear. Days below the limit are counted through a hold (the grace is about money, not about the
hold): a contract still short when its hold ends is blocked at that day's run if its grace is over.

**Notices** (portal.billing.notices; delivered by portal.notifications, rendered per template):

* ``low_balance`` once a day per contract while it is in grace (below the limit, not held, not
  yet blocked, with an account in service): data ``{"grace": true, "block_on": "YYYY-MM-DD",
  "amount_to_unblock": "123.45"}`` (what brings balance + credit limit back to zero), dedup key
  ``low_balance:grace:<contract id>:<day>``.
* ``blocked`` (critical) when the rule blocks a contract's accounts: data ``{"blocked_on":
  "YYYY-MM-DD", "amount_to_unblock": "123.45"}``, dedup key ``blocked:<contract id>:<day>``. At
  the block, what lifts it is exactly the shortfall: the month's days were charged before the
  block and a balance block refunds nothing, so the unblock charges nothing more that day
  (``blocking.top_up_to_unblock`` gives the same figure then).

Both are one INSERT … SELECT each (no loop over contracts).
"""
from __future__ import annotations

from datetime import date, timedelta
from functools import cache

from sqlalchemy import BigInteger, Date, String, and_, bindparam, cast, func, literal, or_, select, type_coerce

from ..extensions import db
from ..models import Account, Contract, GraceRule, Notice, utcnow
from . import audit, clock, notices
from .errors import BillingError
from .sqlfrag import add_days, amount_text, iso_date, json_object, json_true

RULE_ID = 1
MAX_DAYS = 90
contracts = Contract.__table__
accounts = Account.__table__


def money_minor(c=contracts.c):
    """balance + credit limit in kopecks (below zero: short)."""
    return type_coerce(c.balance, BigInteger) + type_coerce(c.credit_limit, BigInteger)


def held(today, c=contracts.c):
    """SQL: the contract may not be blocked today ("do not block", or held until today or later)."""
    return or_(c.do_not_block.is_(True), and_(c.do_not_block_until.is_not(None), c.do_not_block_until >= today))


def block_on(grace=None, c=contracts.c):
    """SQL: the day the grace of a contract below its limit is over (its block day); ``grace``:
    the operator's days (default: read in the same statement, ``operator_days_sql``)."""
    return add_days(c.below_limit_since, func.coalesce(c.grace_days, operator_days_sql() if grace is None else grace))


def operator_days_sql():
    """SQL: the operator's days of grace (0 while no rule is saved), read by the statement that
    uses it: the balance rule needs no round trip of its own for it."""
    g = GraceRule.__table__.c
    return func.coalesce(select(g.days).where(g.id == RULE_ID).scalar_subquery(), 0)


# -- the rule -----------------------------------------------------------------------------------

def rule() -> GraceRule:
    """The operator's grace (an unsaved default of 0 days until an admin saves it)."""
    return db.session.get(GraceRule, RULE_ID) or GraceRule(id=RULE_ID, days=0)


def operator_days() -> int:
    """The operator's days of grace, read once per transaction (the balance rule asks on every
    change; a missing row would otherwise be looked for each time)."""
    db.session.connection()
    txn = db.session().get_transaction()
    memo = db.session.info.get("grace_days")
    if memo is None or memo[0] is not txn:
        memo = db.session.info["grace_days"] = (txn, db.session.scalar(select(operator_days_sql())))
    return memo[1]


def _days(errors: dict, raw, field: str, *, blank_ok: bool) -> int | None:
    if isinstance(raw, str):
        raw = raw.strip()
    if raw in (None, ""):
        if not blank_ok:
            errors[field] = "required"
        return None
    if isinstance(raw, str):
        value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 4 else None
    else:
        value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if value is None:
        errors[field] = "must be a whole number of days"
    elif not 0 <= value <= MAX_DAYS:
        errors[field] = "from 0 to 90 days"
    else:
        return value
    return None


def save_rule(data: dict, *, actor: str) -> GraceRule:
    """Save the operator's grace: ``days`` (0-90). The error names the field."""
    errors: dict[str, str] = {}
    days = _days(errors, data.get("days"), "days", blank_ok=False)
    if errors:
        raise BillingError(errors)
    current = db.session.get(GraceRule, RULE_ID)
    before = {"days": current.days} if current is not None else None
    if current is None:
        current = GraceRule(id=RULE_ID)
        db.session.add(current)
    current.days, current.updated_at, current.updated_by = days, utcnow(), actor
    db.session.flush()
    db.session.info.pop("grace_days", None)
    audit.record(actor, "grace.rules", current, f"grace before the balance block: {days} day(s)", before=before,
                 after={"days": days}, object_type="grace_rule")
    return current


def _date(errors: dict, raw, field: str, today: date) -> date | None:
    if isinstance(raw, date):
        value = raw
    else:
        raw = (raw or "").strip() if isinstance(raw, str) else raw
        if raw in (None, ""):
            return None
        try:
            value = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
        except ValueError:
            value = None
        if value is None:
            errors[field] = "a date (YYYY-MM-DD)"
            return None
    if value < today:
        errors[field] = "must be today or later"
        return None
    if value > today + timedelta(days=3660):
        errors[field] = "at most ten years ahead"
        return None
    return value


def save_contract(contract: Contract, data: dict, *, actor: str) -> Contract:
    """Staff set a contract's own grace (``grace_days``: 0-90, blank = the operator's rule) and
    "do not block until" (``do_not_block_until``: a day from today on, blank = none). The caller
    applies the balance rule afterwards (a hold may lift a block at once). Errors name the field."""
    errors: dict[str, str] = {}
    today = clock.today()
    days = _days(errors, data.get("grace_days"), "grace_days", blank_ok=True)
    until = _date(errors, data.get("do_not_block_until"), "do_not_block_until", today)
    if errors:
        raise BillingError(errors)
    before = {"grace_days": contract.grace_days, "do_not_block_until": _iso(contract.do_not_block_until)}
    contract.grace_days, contract.do_not_block_until = days, until
    db.session.flush()
    audit.record(actor, "contract.holds", contract, f"grace {days if days is not None else 'operator'}, "
                 f"do not block until {_iso(until) or '-'}", before=before,
                 after={"grace_days": days, "do_not_block_until": _iso(until)})
    return contract


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


# -- what the pages show ------------------------------------------------------------------------

def hold_until(contract: Contract, today: date | None = None) -> date | None:
    """The "do not block until" day while it is in force (today or later), else None."""
    today = today or clock.today()
    d = contract.do_not_block_until
    return d if d is not None and d >= today else None


def contract_grace_days(contract: Contract) -> int:
    return contract.grace_days if contract.grace_days is not None else operator_days()


def grace_block_on(contract: Contract, today: date | None = None) -> date | None:
    """The day the balance rule will block a contract that is in grace now (below the limit,
    not held, grace not over), else None."""
    today = today or clock.today()
    since = contract.below_limit_since
    if since is None or contract.do_not_block or hold_until(contract, today) is not None:
        return None
    if contract.balance + contract.credit_limit >= 0:
        return None
    day = since + timedelta(days=contract_grace_days(contract))
    return day if day > today else None


# -- notices (set-based) ------------------------------------------------------------------------

_NOTICE_COLUMNS = ["subscriber_id", "contract_id", "event", "data", "critical", "dedup_key", "created_at"]


def _contract_in_service():
    a = accounts.c
    return contracts.c.id.in_(select(a.contract_id).where(a.status == "active"))


@cache
def _warnings_statement(dialect: str, scoped: bool):
    """The INSERT ... SELECT of ``record_grace_warnings``, built once per process (parameters:
    w_today, w_now and, when ``scoped``, w_ids): building it cost more than running it for the
    one contract a payment touches."""
    c = contracts.c
    today = bindparam("w_today", type_=Date())
    due = block_on()
    where = [c.below_limit_since.is_not(None), money_minor() < 0, ~held(today), due > today, _contract_in_service()]
    if scoped:
        where.append(c.id.in_(bindparam("w_ids", expanding=True)))
    stmt = select(
        c.subscriber_id, c.id, literal("low_balance"),
        json_object(literal("grace"), json_true(dialect), literal("block_on"), iso_date(due),
                    literal("amount_to_unblock"), amount_text(-money_minor())),
        literal(False),
        literal("low_balance:grace:") + cast(c.id, String) + literal(":") + iso_date(today),
        bindparam("w_now", type_=Notice.__table__.c.created_at.type),
    ).where(*where)
    return notices.from_select_statement(_NOTICE_COLUMNS, stmt)


def record_grace_warnings(today: date, contract_ids: list[int] | None = None) -> int:
    """A ``low_balance`` notice (grace) for every contract in grace today, once a day each (the
    operator's grace read by the statement)."""
    scoped = contract_ids is not None
    if scoped and not contract_ids:
        return 0
    params = {"w_today": today, "w_now": utcnow()}
    if scoped:
        params["w_ids"] = list(contract_ids)
    return notices.run_insert(_warnings_statement(db.session.get_bind().dialect.name, scoped), params)


@cache
def _blocked_statement(dialect: str):
    """The INSERT ... SELECT of ``record_blocked``, built once per process (parameters: b_today,
    b_now, b_ids)."""
    c = contracts.c
    day = iso_date(bindparam("b_today", type_=Date()))
    stmt = select(
        c.subscriber_id, c.id, literal("blocked"),
        json_object(literal("blocked_on"), day, literal("amount_to_unblock"), amount_text(-money_minor())),
        literal(True),
        literal("blocked:") + cast(c.id, String) + literal(":") + day,
        bindparam("b_now", type_=Notice.__table__.c.created_at.type),
    ).where(c.id.in_(bindparam("b_ids", expanding=True)), money_minor() < 0)
    return notices.from_select_statement(_NOTICE_COLUMNS, stmt)


def record_blocked(today: date, contract_ids: list[int]) -> int:
    """A critical ``blocked`` notice for each contract the rule has just blocked."""
    if not contract_ids:
        return 0
    return notices.run_insert(_blocked_statement(db.session.get_bind().dialect.name),
                              {"b_today": today, "b_now": utcnow(), "b_ids": sorted(set(contract_ids))})
