"""The balance rule, in one place.

An account whose contract has balance + credit limit below zero is blocked with the
``balance`` reason, unless the contract says "do not block", or "do not block until" a day not
yet past, or is still in its grace (portal.billing.grace: N days below the limit before the
block, counted in BILLING_TZ from ``Contract.below_limit_since``, which the rule's first
statement sets and clears). When the contract is back at zero or above (or held, or back in
grace), the ``balance`` reason goes and nothing else does: a manager's or the subscriber's block
stays. Set-based, so the charge run can apply it to every contract at once; the blocked
contracts get a critical ``blocked`` notice and those in grace a daily ``low_balance`` one
(grace.record_blocked, grace.record_grace_warnings: one INSERT … SELECT each).
"""
from __future__ import annotations

from decimal import Decimal
from functools import cache
from types import SimpleNamespace

from sqlalchemy import BigInteger, Date, and_, bindparam, case, func, insert, literal, or_, select, type_coerce, update

from ..extensions import db, expire_loaded
from ..models import BLOCK_REASONS, Account, AuditEntry, Contract, OutboxEvent, utcnow
from . import audit, clock, driver_sql, grace
from .hooks import known_platforms
from .outbox import notify, platforms_query, remember
from .prorate import unblock_charge
from .sqlfrag import json_object

BALANCE = 1
# the rule's audit entries (action, summary), written by _record and by _rule_recorded's SQL
BLOCKED = ("account.block", "blocked by balance")
LIFTED = ("account.unblock", "balance block lifted")
# Reason sets without the balance bit, listed: an IN list is planned as the plain filter it
# is, where a bit test looked so selective to PostgreSQL that it probed contracts row by row.
WITHOUT_BALANCE = [r for r in range(sum(BLOCK_REASONS.values()) + 1) if not r & BALANCE]
accounts = Account.__table__
contracts = Contract.__table__


def _short_contracts(since_inline: bool = False):
    """Contracts whose money is below the credit limit, that may be blocked (not "do not
    block", no hold-until in force) and whose grace is over (parameter: today; the operator's
    grace is read by the statement itself). ``since_inline``: the grace counted from
    ``below_limit_since`` as ``_since_statement`` sets it (today when it is not set yet), for a
    statement that runs that UPDATE itself, as a CTE whose change its other parts do not see."""
    c = contracts.c
    money = type_coerce(c.balance, BigInteger) + type_coerce(c.credit_limit, BigInteger)
    today = bindparam("today", type_=Date())
    since = SimpleNamespace(below_limit_since=func.coalesce(c.below_limit_since, today), grace_days=c.grace_days) \
        if since_inline else c
    return select(c.id).where(money < 0, c.do_not_block.is_(False),
                              or_(c.do_not_block_until.is_(None), c.do_not_block_until < today),
                              grace.block_on(c=since) <= today)


def _scope(col, scoped: bool, one: bool):
    """The statements' scope: every row (not ``scoped``), the contracts of the parameter
    contract_ids (an expanding IN list), or, when ``one``, the one contract of one_contract_id: a
    plain parameter, where rendering the IN list at each execution cost about 150 Python calls
    (a payment's rule runs for one contract)."""
    if not scoped:
        return []
    return [col == bindparam("one_contract_id") if one else col.in_(bindparam("contract_ids", expanding=True))]


def _scope_params(contract_ids) -> dict:
    ids = list(contract_ids)
    return {"one_contract_id": ids[0]} if len(ids) == 1 else {"contract_ids": ids}


@cache
def _since_statement(scoped: bool, one: bool = False):
    """Keeps ``below_limit_since``: today for a contract that has just gone below its limit,
    NULL for one back at zero or above (parameters: today and, when ``scoped``, contract_ids or,
    when ``one``, one_contract_id). Before the rule's UPDATEs, which read it; the partial index
    finds the few set ones."""
    c = contracts.c
    money = type_coerce(c.balance, BigInteger) + type_coerce(c.credit_limit, BigInteger)
    stmt = update(contracts).where(or_(and_(money < 0, c.below_limit_since.is_(None)),
                                       and_(c.below_limit_since.is_not(None), money >= 0))) \
        .values(below_limit_since=case((money < 0, bindparam("today", type_=Date())), else_=None))
    return stmt.where(*_scope(c.id, scoped, one))


@cache
def _rule_statements(scoped: bool, one: bool = False, since_inline: bool = False):
    """The UPDATEs of the rule, built once per process (parameters: today and, when ``scoped``,
    contract_ids or, when ``one``, one_contract_id); each returns (account id, 1 if now blocked
    by balance else 0, contract id). For a few
    contracts (a change, a payment) block and unblock are one statement, one round trip; the
    charge run over every contract keeps them apart, each planned as the plain filter it is.
    ``since_inline``: see _short_contracts."""
    a = accounts.c
    today = bindparam("today", type_=a.status_changed_on.type)
    scope = _scope(a.contract_id, scoped, one)
    # the short contracts among those in scope: unscoped, the subquery was planned as a scan of
    # every contract (a hashed subplan, evaluated up to four times) for a payment's one contract
    short = a.contract_id.in_(_short_contracts(since_inline).where(*_scope(contracts.c.id, scoped, one)))
    # (literal values: a plain list is an expanding parameter, rendered again at every execution)
    to_block = and_(short, a.status.in_([literal("active"), literal("blocked")]),
                    a.block_reasons.in_([literal(r) for r in WITHOUT_BALANCE]))
    to_lift = and_(~short, a.status == "blocked", a.block_reasons.op("&")(BALANCE) != 0)
    remaining = a.block_reasons.op("&")(~BALANCE)
    lifted = {"status": case((remaining == 0, "active"), else_="blocked"), "block_reasons": remaining}
    blocked = {"status": "blocked", "block_reasons": a.block_reasons.op("|")(BALANCE)}
    now_blocked = a.block_reasons.op("&")(BALANCE)  # (RETURNING gives the new value)

    def stmt(where, values):
        # status_changed_on: the billing state changes today (see charging: "since")
        return update(accounts).where(*scope, where).values(status_changed_on=today, **values) \
            .returning(a.id, now_blocked, a.contract_id)

    if scoped:
        return [stmt(or_(to_block, to_lift), {k: case((short, blocked[k]), else_=lifted[k]) for k in blocked})]
    return [stmt(to_block, blocked), stmt(to_lift, lifted)]


@cache
def _rule_recorded(platforms: tuple[str, ...]):
    """PostgreSQL, one contract: ``_since_statement``, the rule's UPDATE and what ``_record``
    writes for the accounts it changed, in one statement (data-modifying CTEs; the rule reads the
    contract's ``below_limit_since`` as the first sets it, since_inline): the audit rows and the
    outbox rows (platforms from outbox.platforms_query) over the rule's RETURNING. Returns
    (account id, now blocked, contract id, outbox id, account id, platform, reason), one row per
    outbox row (NULLs when none). Parameters: the rule's (today, one_contract_id), r_at, r_actor,
    r_null (None: the JSON null audit.record writes for no before/after), o_now. Four round
    trips were one each."""
    since = _since_statement(True, True).cte("since_kept")
    changed = _rule_statements(True, True, True)[0].cte("rule_changed")
    account_id, now_blocked, contract_id = list(changed.c)
    is_block = now_blocked != 0
    au, o = AuditEntry.__table__.c, OutboxEvent.__table__.c
    reason = json_object(literal("reason"), literal("balance"))
    null = bindparam("r_null", type_=au.before.type)
    audited = insert(AuditEntry.__table__).from_select(
        ["at", "actor", "action", "object_type", "object_id", "summary", "before", "after"],
        select(bindparam("r_at", type_=au.at.type), bindparam("r_actor", type_=au.actor.type),
               case((is_block, BLOCKED[0]), else_=LIFTED[0]), literal("account"), account_id,
               case((is_block, BLOCKED[1]), else_=LIFTED[1]),
               case((is_block, null), else_=reason), case((is_block, reason), else_=null)).select_from(changed),
    ).cte("rule_audit")
    pairs = platforms_query(select(account_id).correlate(None))
    now = bindparam("o_now", type_=o.created_at.type)
    told = insert(OutboxEvent.__table__).from_select(
        ["account_id", "platform", "reason", "created_at", "enqueued_at"],
        select(pairs.c.account_id, pairs.c.platform,
               case((is_block, "blocked_by_balance"), else_="unblocked_by_balance"), now, now)
        .select_from(pairs.join(changed, account_id == pairs.c.account_id)),
    ).returning(o.id, o.account_id, o.platform, o.reason).cte("rule_outbox")
    return select(account_id, now_blocked, contract_id, told.c.id, told.c.account_id, told.c.platform,
                  told.c.reason).select_from(changed.outerjoin(told, told.c.account_id == account_id)) \
        .add_cte(audited, since)


def balance_rule(contract_ids: list[int] | None = None, *, actor: str = "system",
                 solvent: bool = False) -> tuple[list[int], list[int]]:
    """Block and unblock by balance (every contract when ``contract_ids`` is None); returns
    (blocked account ids, unblocked account ids). The rule alone: callers want
    ``charging.apply_balance_rule``, which also charges the days an unblock gives back.
    ``solvent``: the caller has read in this transaction, under the contracts' row locks (its
    balance UPDATE), that each of them has balance + credit limit at zero or above: none is in
    grace, so the grace warnings' statement is skipped."""
    today = clock.today()
    scoped = contract_ids is not None
    if scoped:
        contract_ids = list(contract_ids)
        if not contract_ids:
            # (an empty IN list matched nothing: nothing to block, lift or warn of)
            expire_loaded(Contract, ["below_limit_since"])
            return [], []
    one = scoped and len(contract_ids) == 1
    params = {"today": today, **(_scope_params(contract_ids) if scoped else {})}
    blocked, unblocked, blocked_contracts = [], [], set()
    if one and db.session.get_bind().dialect.name == "postgresql":
        now = utcnow()
        rows = driver_sql.rows(_rule_recorded(tuple(known_platforms())), {
            **params, "r_at": now, "r_actor": actor, "r_null": None, "o_now": now})
        seen, told = set(), []
        for account_id, now_blocked, contract_id, *outbox_row in rows:
            if outbox_row[0] is not None:
                told.append(tuple(outbox_row))
            if account_id in seen:
                continue
            seen.add(account_id)
            (blocked if now_blocked else unblocked).append(account_id)
            if now_blocked:
                blocked_contracts.add(contract_id)
        remember(told)  # for outbox's after-commit hand-off, as notify's
        _expire_accounts(seen)
    else:
        db.session.execute(_since_statement(scoped, one), params)
        for statement in _rule_statements(scoped, one):
            for account_id, now_blocked, contract_id in db.session.execute(statement, params):
                (blocked if now_blocked else unblocked).append(account_id)
                if now_blocked:
                    blocked_contracts.add(contract_id)
        if blocked or unblocked:
            _record(blocked, unblocked, actor)
    grace.record_blocked(today, sorted(blocked_contracts))
    if not (scoped and solvent):
        grace.record_grace_warnings(today, list(contract_ids) if scoped else None)
    expire_loaded(Contract, ["below_limit_since"])
    return blocked, unblocked


def _record(blocked: list[int], unblocked: list[int], actor: str) -> None:
    now = utcnow()
    rows = [dict(at=now, actor=actor, action=BLOCKED[0], object_type="account", object_id=i,
                 summary=BLOCKED[1], before=None, after={"reason": "balance"}) for i in blocked]
    rows += [dict(at=now, actor=actor, action=LIFTED[0], object_type="account", object_id=i,
                  summary=LIFTED[1], before={"reason": "balance"}, after=None) for i in unblocked]
    # audit.record's plain INSERT, built once: the ORM's bulk insert cost ~200 Python calls
    db.session.execute(audit.INSERT, rows[0] if len(rows) == 1 else rows)
    notify(blocked, "blocked_by_balance")
    notify(unblocked, "unblocked_by_balance")
    _expire_accounts(set(blocked) | set(unblocked))


def _expire_accounts(changed: set) -> None:
    if changed:
        expire_loaded(Account, ["status", "block_reasons", "status_changed_on"], lambda a: a.id in changed)



def idle():
    """SQL, true when this rule has nothing to do on a contract (in a contract's UPDATE ...
    RETURNING: its new values): its money (balance + credit limit) is at zero or above, no grace
    is running (``below_limit_since``) and no account of it is blocked by balance. Then there is
    nothing to block, lift, start or end a grace for, or warn of, so a change may skip the rule."""
    c, a = contracts.c, accounts.c
    money = type_coerce(c.balance, BigInteger) + type_coerce(c.credit_limit, BigInteger)
    held = select(a.id).where(a.contract_id == c.id, a.status == "blocked", a.block_reasons.op("&")(BALANCE) != 0)
    return and_(money >= 0, c.below_limit_since.is_(None), ~held.exists())


@cache
def _idle_statement():
    return select(idle()).where(contracts.c.id == bindparam("cid"))


def is_idle(contract_id: int) -> bool:
    """``idle`` for one contract, read now (one small SELECT: cheaper than the rule's statements)."""
    found = driver_sql.rows(_idle_statement(), {"cid": contract_id})
    return bool(found and found[0][0])


def money_left(contract: Contract) -> Decimal:
    """How far the contract may still go down before this rule blocks it."""
    return contract.balance + contract.credit_limit


def can_afford(contract: Contract, amount: Decimal) -> bool:
    """Whether taking ``amount`` now leaves the contract clear of the balance block ("do not
    block" contracts always are)."""
    return contract.do_not_block or money_left(contract) - amount >= 0


def can_pay_out(contract: Contract, amount: Decimal) -> bool:
    """Whether the contract's own money covers ``amount`` passed on to a third party at once
    (a hosting order paid to the selling BILLmanager): balance + credit limit must cover it,
    and "do not block" lends nothing for it, unlike ``can_afford``."""
    return money_left(contract) >= amount


def top_up_to_unblock(contract: Contract) -> Decimal | None:
    """How much a payment must at least bring for this rule (blocked while balance + credit
    limit < 0) to lift the balance block and keep it lifted: up to the credit limit, plus what
    the unblock then charges (days not yet paid, e.g. the rest of a month begun blocked);
    None if none is due."""
    short = money_left(contract)
    if contract.do_not_block or short >= 0:
        return None
    return -short + max(unblock_charge(contract), Decimal("0"))
