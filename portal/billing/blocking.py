"""The balance rule, in one place.

An account whose contract has balance + credit limit below zero is blocked with the
``balance`` reason, unless the contract says "do not block". When the contract is back at
zero or above (or "do not block" is set), the ``balance`` reason goes and nothing else does:
a manager's or the subscriber's block stays. Set-based, so the charge run can apply it to
every contract at once.
"""
from __future__ import annotations

from decimal import Decimal
from functools import cache

from sqlalchemy import BigInteger, bindparam, case, insert, select, type_coerce, update

from ..extensions import db, expire_loaded
from ..models import BLOCK_REASONS, Account, AuditEntry, Contract, utcnow
from . import clock

BALANCE = 1
# Reason sets without the balance bit, listed: an IN list is planned as the plain filter it
# is, where a bit test looked so selective to PostgreSQL that it probed contracts row by row.
WITHOUT_BALANCE = [r for r in range(sum(BLOCK_REASONS.values()) + 1) if not r & BALANCE]
accounts = Account.__table__
contracts = Contract.__table__


def _short_contracts():
    """Contracts whose money is below the credit limit and that may be blocked."""
    c = contracts.c
    money = type_coerce(c.balance, BigInteger) + type_coerce(c.credit_limit, BigInteger)
    return select(c.id).where(money < 0, c.do_not_block.is_(False))


@cache
def _rule_statements(scoped: bool):
    """The block and unblock UPDATEs, built once per process (parameters: today and, when
    ``scoped``, contract_ids)."""
    a = accounts.c
    today = bindparam("today", type_=a.status_changed_on.type)
    scope = [a.contract_id.in_(bindparam("contract_ids", expanding=True))] if scoped else []
    short = a.contract_id.in_(_short_contracts())
    has_balance = a.block_reasons.op("&")(BALANCE) != 0
    block = (
        update(accounts)
        .where(*scope, short, a.status.in_(("active", "blocked")), a.block_reasons.in_(WITHOUT_BALANCE))
        .values(
            status_changed_on=today,  # the billing state changes today (see charging: "since")
            status="blocked",
            block_reasons=a.block_reasons.op("|")(BALANCE),
        )
        .returning(a.id)
    )
    remaining = a.block_reasons.op("&")(~BALANCE)
    unblock = (
        update(accounts)
        .where(*scope, ~short, a.status == "blocked", has_balance)
        .values(
            status_changed_on=today,
            status=case((remaining == 0, "active"), else_="blocked"),
            block_reasons=remaining,
        )
        .returning(a.id)
    )
    return block, unblock


def apply_balance_rule(contract_ids: list[int] | None = None, *, actor: str = "system",
                       recharge: bool = True) -> tuple[list[int], list[int]]:
    """Block and unblock by balance; returns (blocked account ids, unblocked account ids)."""
    today = clock.today()
    block, unblock = _rule_statements(contract_ids is not None)
    params = {"today": today} if contract_ids is None else {"today": today, "contract_ids": list(contract_ids)}
    blocked = db.session.execute(block, params).scalars().all()
    unblocked = db.session.execute(unblock, params).scalars().all()

    if blocked or unblocked:
        _record(blocked, unblocked, actor)
    if unblocked and recharge:
        # Days given back by the unblock are charged now; a balance block refunded nothing,
        # so only days not yet paid for are charged and the run cannot swing back and forth.
        from .charging import charge_accounts

        charge_accounts(unblocked, actor=actor)
        apply_balance_rule(contract_ids, actor=actor, recharge=False)
    return list(blocked), list(unblocked)


def _record(blocked: list[int], unblocked: list[int], actor: str) -> None:
    from ..platforms.outbox import notify

    now = utcnow()
    rows = [dict(at=now, actor=actor, action="account.block", object_type="account", object_id=i,
                 summary="blocked by balance", before=None, after={"reason": "balance"}) for i in blocked]
    rows += [dict(at=now, actor=actor, action="account.unblock", object_type="account", object_id=i,
                  summary="balance block lifted", before={"reason": "balance"}, after=None) for i in unblocked]
    db.session.execute(insert(AuditEntry), rows)
    notify(blocked, "blocked_by_balance")
    notify(unblocked, "unblocked_by_balance")
    changed = set(blocked) | set(unblocked)
    expire_loaded(Account, ["status", "block_reasons", "status_changed_on"], lambda a: a.id in changed)


def money_left(contract: Contract) -> Decimal:
    """How far the contract may still go down before this rule blocks it."""
    return contract.balance + contract.credit_limit


def can_afford(contract: Contract, amount: Decimal) -> bool:
    """Whether taking ``amount`` now leaves the contract clear of the balance block ("do not
    block" contracts always are)."""
    return contract.do_not_block or money_left(contract) - amount >= 0


def top_up_to_unblock(contract: Contract) -> Decimal | None:
    """How much a payment must at least bring for this rule (blocked while balance + credit
    limit < 0) to lift the balance block; None if none is due."""
    short = money_left(contract)
    if contract.do_not_block or short >= 0:
        return None
    return -short
