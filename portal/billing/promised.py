"""Promised payments (обещанный платёж): the operator's rules, the offer, taking one, returning it.

A subscriber whose accounts the balance rule blocked takes a promised payment (in the cabinet,
or staff on the contract page): a credit in the ledger (a correction keyed ``promised:<id>``,
comment "promised payment until <day>") that lifts the balance block at once through the
balance rule, and an optional fee (a charge keyed ``promised-fee:<id>``). It is in force
through ``until`` = the day taken + the rule's days (BILLING_TZ); the expiry job on the day
after posts the full amount back (a correction keyed ``promised-return:<id>``, comment
"promised payment returned"), and the balance rule blocks again if no money came meanwhile.
Payments that arrived meanwhile simply count in the balance: the return is always the whole
promised amount, as in LANBilling and ABillS.

Refusals name the field ``promised_payment`` with the reason (the pages translate them): off,
contract disabled (no account in service), not allowed for the tariff, one already in force,
the month's limit (calendar months in BILLING_TZ) reached, no balance block to lift, blocked by
a manager (money does not lift that), the amount over the maximum or too small to lift it.

Concurrency: taking one holds the contract's lock (accounts.lock_account, as every money
change does) and re-reads everything under it; a unique index allows one payment in force per
contract and the request's one-time key makes a repeat answer the first. The expiry is set-based
(``return_due``): it locks the due payments' contracts in id order, claims the rows with one
guarded UPDATE (status 'active' -> 'returned'), so parallel runs return each payment once, and
posts the debits with one INSERT ... SELECT whose ledger keys would refuse a second debit anyway.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import BigInteger, String, case, cast, func, literal, select, type_coerce, update

from ..db_setup import dialect_insert
from ..extensions import db, expire_loaded
from ..models import (
    BLOCK_REASONS,
    Account,
    Contract,
    LedgerEntry,
    PromisedPayment,
    PromisedRule,
    Tariff,
    to_minor,
    utcnow,
)
from ..models.base import UTCDateTime
from ..models.promised import AMOUNT_MODES
from . import audit, clock, inputs, ledger
from .accounts import lock_account
from .blocking import top_up_to_unblock
from .errors import BillingError
from .prorate import unblock_charge

RULE_ID = 1
FIELD = "promised_payment"
MAX_DAYS = 90
MAX_PER_MONTH = 31
RANGES = {"days": "from 1 to 90 days", "per_month": "from 1 to 31"}
BALANCE, MANAGER = BLOCK_REASONS["balance"], BLOCK_REASONS["manager"]

# The refusals, in one list (the pages translate each).
OFF = "promised payments are off"
DISABLED = "the contract is disabled"
TARIFF = "not allowed for this tariff"
ACTIVE = "a promised payment is in force already"
MONTH_LIMIT = "the limit of promised payments for this month is reached"
FINE = "the balance is fine: there is no block to lift"
MANAGER_BLOCK = "blocked by a manager: money does not lift that block"
OVER_MAX = "the amount needed is over the maximum of a promised payment"
TOO_SMALL = "the promised amount is too small to lift the block"
REFUSALS = (OFF, DISABLED, TARIFF, ACTIVE, MONTH_LIMIT, FINE, MANAGER_BLOCK, OVER_MAX, TOO_SMALL)


# The ledger keys of its entries (``<prefix>:<promised payment id>``) and their comments.
CREDIT_KEY, FEE_KEY, RETURN_KEY = "promised", "promised-fee", "promised-return"
RETURN_COMMENT = "promised payment returned"
FEE_COMMENT = "fee for a promised payment"
_UNTIL = re.compile(r"until (\d{2})\.(\d{2})\.(\d{4})$")


def credit_comment(until: date) -> str:
    return f"promised payment until {until:%d.%m.%Y}"


def entry_kind(key: str | None) -> str | None:
    """Which promised-payment entry a ledger key names (CREDIT_KEY, FEE_KEY, RETURN_KEY), if any."""
    prefix = (key or "").partition(":")[0]
    return prefix if prefix in (CREDIT_KEY, FEE_KEY, RETURN_KEY) else None


def entry_until(comment: str | None) -> date | None:
    """The last day a promised payment's credit entry names (its comment, credit_comment)."""
    m = _UNTIL.search(comment or "")
    return date(int(m.group(3)), int(m.group(2)), int(m.group(1))) if m else None


# -- the rules ----------------------------------------------------------------------------------

def rule() -> PromisedRule:
    """The operator's rules (an unsaved, disabled default until an admin saves them)."""
    return db.session.get(PromisedRule, RULE_ID) or PromisedRule(
        id=RULE_ID, enabled=False, amount_mode="unblock", days=3, per_month=1, fee=Decimal("0"), tariffs=[])


def _whole(errors: dict, data: dict, field: str, low: int, high: int) -> int | None:
    raw = data.get(field)
    if isinstance(raw, str):
        raw = raw.strip()
        value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else None
    else:
        value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if raw in (None, ""):
        errors[field] = "required"
    elif value is None:
        errors[field] = "must be an integer"
    elif not low <= value <= high:
        errors[field] = RANGES[field]
    else:
        return value
    return None


def _money(errors: dict, data: dict, field: str, *, required: bool, positive: bool) -> Decimal | None:
    raw = data.get(field)
    if raw in (None, ""):
        if required:
            errors[field] = "required"
        return None
    try:
        value = inputs.parse_amount(raw, field)
    except BillingError as e:
        errors.update(e.fields)
        return None
    if value < 0 or (positive and value == 0):
        errors[field] = "must be positive" if positive else "must not be negative"
        return None
    return value


def save_rule(data: dict, *, actor: str) -> PromisedRule:
    """Save the operator's rules. ``data``: enabled, amount_mode (fixed | unblock), amount (the
    fixed one), max_amount (required for unblock), days (1-90), per_month (1-31), fee, and
    tariff_ids (none: every tariff). Every error names its field; nothing is saved then."""
    errors: dict[str, str] = {}
    mode = data.get("amount_mode")
    if mode not in AMOUNT_MODES:
        errors["amount_mode"] = f"must be one of {', '.join(AMOUNT_MODES)}"
    amount = _money(errors, data, "amount", required=mode == "fixed", positive=True)
    max_amount = _money(errors, data, "max_amount", required=mode == "unblock", positive=True)
    if mode == "fixed" and amount is not None and max_amount is not None and amount > max_amount:
        errors["amount"] = "over the maximum"
    days = _whole(errors, data, "days", 1, MAX_DAYS)
    per_month = _whole(errors, data, "per_month", 1, MAX_PER_MONTH)
    fee = _money(errors, data, "fee", required=False, positive=False) or Decimal("0")
    tariff_ids = data.get("tariff_ids") or []
    if not isinstance(tariff_ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tariff_ids):
        errors["tariff_ids"] = "a list of tariff ids"
        tariffs = []
    else:
        tariffs = list(db.session.scalars(select(Tariff).where(Tariff.id.in_(tariff_ids)))) if tariff_ids else []
        if len(tariffs) != len(set(tariff_ids)):
            errors["tariff_ids"] = "no such tariff"
    if not errors and mode == "unblock" and max_amount is not None and fee >= max_amount:
        errors["fee"] = "the fee must be below the maximum"
    if not errors and mode == "fixed" and fee >= amount:
        errors["fee"] = "the fee must be below the amount"
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        errors["enabled"] = "true or false"
    if errors:
        raise BillingError(errors)
    current = db.session.get(PromisedRule, RULE_ID)
    before = _rule_dict(current) if current is not None else None
    if current is None:
        current = PromisedRule(id=RULE_ID)
        db.session.add(current)
    current.enabled, current.amount_mode, current.days, current.per_month = enabled, mode, days, per_month
    current.amount = amount if mode == "fixed" else None
    current.max_amount, current.fee, current.tariffs = max_amount, fee, tariffs
    current.updated_at, current.updated_by = utcnow(), actor
    db.session.flush()
    audit.record(actor, "promised.rules", current, "promised payment rules saved", before=before,
                 after=_rule_dict(current), object_type="promised_rule")
    return current


def _rule_dict(r: PromisedRule) -> dict:
    return {"enabled": r.enabled, "amount_mode": r.amount_mode, "amount": str(r.amount) if r.amount else None,
            "max_amount": str(r.max_amount) if r.max_amount else None, "days": r.days, "per_month": r.per_month,
            "fee": str(r.fee), "tariff_ids": [t.id for t in r.tariffs]}


# -- the offer ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    """What taking a promised payment now would do, or why it cannot be taken."""
    refusal: str | None         # one of REFUSALS, or None: it may be taken
    amount: Decimal | None = None
    fee: Decimal = Decimal("0")
    days: int = 0
    until: date | None = None   # the last day it is in force (returned the day after)
    unblock_charge: Decimal = Decimal("0")  # what the unblock charges at once (days not yet paid)
    balance_after: Decimal | None = None    # the balance once taken, fee and that charge included


def active(contract: Contract) -> PromisedPayment | None:
    """The contract's promised payment in force, if any."""
    return db.session.scalar(select(PromisedPayment).where(PromisedPayment.contract_id == contract.id,
                                                           PromisedPayment.status == "active"))


def taken_this_month(contract: Contract, today: date) -> int:
    return db.session.scalar(select(func.count()).select_from(PromisedPayment).where(
        PromisedPayment.contract_id == contract.id,
        PromisedPayment.taken_on.between(clock.month_start(today), clock.month_end(today))))


def offer(contract: Contract, today: date | None = None) -> Offer:
    """What the rules allow this contract today: the amount, fee, days, end date and the balance
    after, or the first rule that refuses (in the order the module docstring lists them)."""
    today = today or clock.today()
    r = rule()
    if not r.enabled:
        return Offer(OFF)
    live = [a for a in contract.accounts if a.status != "disabled"]
    if not live:
        return Offer(DISABLED)
    allowed = {t.id for t in r.tariffs}
    if allowed and not any(a.tariff_id in allowed for a in live):
        return Offer(TARIFF)
    if active(contract) is not None:
        return Offer(ACTIVE)
    if taken_this_month(contract, today) >= r.per_month:
        return Offer(MONTH_LIMIT)
    top_up = top_up_to_unblock(contract)  # the cabinet's "top up at least": the one place of that sum
    by_balance = [a for a in live if a.status == "blocked" and a.block_reasons & BALANCE]
    if top_up is None or not by_balance:
        return Offer(FINE)
    if all(a.block_reasons & MANAGER for a in by_balance):
        return Offer(MANAGER_BLOCK)
    fee = r.fee or Decimal("0")
    need = top_up + fee
    if r.amount_mode == "unblock":
        amount = need
        if r.max_amount is not None and amount > r.max_amount:
            return Offer(OVER_MAX)
    else:
        amount = r.amount
        if amount < need:
            return Offer(TOO_SMALL)
    charge = max(unblock_charge(contract, today), Decimal("0"))
    return Offer(None, amount=amount, fee=fee, days=r.days, until=today + timedelta(days=r.days),
                 unblock_charge=charge, balance_after=contract.balance + amount - fee - charge)


# -- taking one ---------------------------------------------------------------------------------

def take(contract: Contract, *, actor: str, request_key: str | None = None) -> tuple[PromisedPayment, bool]:
    """Take a promised payment for ``contract`` now, under its lock. Returns (payment, created):
    a repeat of ``request_key`` (a double click, parallel posts of one form) answers the first
    payment and posts nothing. Refused with BillingError({"promised_payment": reason})."""
    if request_key is not None:
        inputs.parse_text(request_key, "nonce", inputs.text_limit(PromisedPayment.__table__.c.request_key))
    if contract.accounts:
        # the contract's lock (lock_account locks the contract row); then everything is read afresh
        lock_account(contract.accounts[0])
        db.session.refresh(contract, ["accounts"])
        for a in contract.accounts:
            db.session.refresh(a, ["status", "block_reasons", "tariff_id"])
    if request_key is not None:
        done = db.session.scalar(select(PromisedPayment).filter_by(request_key=request_key))
        if done is not None:
            if done.contract_id != contract.id:
                raise BillingError({"nonce": "already used"})
            return done, False
    today = clock.today()
    o = offer(contract, today)
    if o.refusal:
        raise BillingError({FIELD: o.refusal})
    payment = PromisedPayment(contract_id=contract.id, amount=o.amount, fee=o.fee, taken_on=today, until=o.until,
                              status="active", taken_by=actor, taken_at=utcnow(), request_key=request_key)
    db.session.add(payment)
    db.session.flush()
    # the fee first without the rule, then the credit with it: the rule runs once, on the final sum
    if o.fee:
        ledger.post(contract.id, "charge", -o.fee, actor=actor, comment=FEE_COMMENT,
                    idempotency_key=f"{FEE_KEY}:{payment.id}", apply_rules=False)
    ledger.post(contract.id, "correction", o.amount, actor=actor, comment=credit_comment(o.until),
                idempotency_key=f"{CREDIT_KEY}:{payment.id}")
    audit.record(actor, "promised.take", contract, f"promised payment {o.amount} until {o.until:%Y-%m-%d}",
                 after={"promised_payment_id": payment.id, "amount": str(o.amount), "fee": str(o.fee),
                        "until": o.until.isoformat()})
    return payment, True


# -- expiry -------------------------------------------------------------------------------------

def return_due(today: date | None = None, *, actor: str = "system", limit: int | None = None) -> list[int]:
    """Return the promised payments whose last day is before ``today`` (default: today in
    BILLING_TZ), at most ``limit`` of them (the oldest first), set-based as the charge run posts:

    1. the contracts of the due payments locked in id order (contract first, as every money
       change locks; PostgreSQL: one SELECT ... FOR UPDATE);
    2. one guarded UPDATE claims the due payments of those contracts (status 'active' ->
       'returned'), so a second run, or one in parallel, claims none of them;
    3. one INSERT ... SELECT posts the return debits, the whole amount of each (a correction
       keyed ``promised-return:<id>``: ON CONFLICT DO NOTHING, so a debit is never posted twice);
    4. one UPDATE moves the balances, then the audit rows in one INSERT, the balance rule once
       for those contracts (blocking where no money came) and the outbox once.

    Returns the ids returned by this call (the job commits batch by batch, so no contract stays
    locked long)."""
    today = today or clock.today()
    p, le, c = PromisedPayment.__table__.c, LedgerEntry.__table__, Contract.__table__.c
    is_due = (p.status == "active", p.until < today)
    due = select(p.contract_id).where(*is_due).order_by(p.until, p.id).limit(limit)
    lock = select(c.id).where(c.id.in_(due.scalar_subquery())).order_by(c.id)
    if db.session.get_bind().dialect.name == "postgresql":
        lock = lock.with_for_update()
    # (SQLite: the claim below is the transaction's first write, which takes the write lock)
    now = utcnow()
    while True:
        contract_ids = db.session.scalars(lock).all()
        if not contract_ids:
            return []
        # only the rows of the contracts this run holds: a row of a contract another run holds is
        # that run's (claiming it here would wait on its row while it waits on our contract)
        claimed = db.session.execute(
            update(PromisedPayment.__table__).where(*is_due, p.contract_id.in_(contract_ids))
            .values(status="returned", returned_at=now).returning(p.id, p.contract_id, p.amount)).all()
        if claimed:
            break
        # a parallel run returned them while this one waited for the contracts: look again
    ids = sorted(pid for pid, _c, _a in claimed)
    key = literal(f"{RETURN_KEY}:") + cast(p.id, String)
    debits = select(p.contract_id, literal("correction"), -p.amount, literal(RETURN_COMMENT), literal(actor), key,
                    literal(now, UTCDateTime)).where(p.id.in_(ids)).order_by(p.id)
    posted = db.session.execute(
        dialect_insert(le).from_select(["contract_id", "kind", "amount", "comment", "author", "idempotency_key",
                                        "created_at"], debits)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(le.c.id, le.c.contract_id, le.c.amount, le.c.idempotency_key)).all()
    sums: dict[int, int] = {}
    for _id, contract_id, amount, _key in posted:
        sums[contract_id] = sums.get(contract_id, 0) + to_minor(amount)
    if sums:  # one UPDATE: each contract's balance plus its debits (a CASE by id)
        db.session.execute(update(Contract.__table__).where(c.id.in_(list(sums))).values(
            balance=type_coerce(c.balance, BigInteger) + case(
                {k: literal(v, BigInteger) for k, v in sums.items()}, value=c.id)))
    audit.record_many(
        [dict(actor=actor, action="ledger.correction", object_type="contract", object_id=contract_id,
              summary=f"correction {amount}", after={"entry_id": entry_id, "amount": str(amount),
                                                     "comment": RETURN_COMMENT})
         for entry_id, contract_id, amount, _key in posted]
        + [dict(actor=actor, action="promised.return", object_type="contract", object_id=contract_id,
                summary=f"promised payment {amount} returned",
                after={"promised_payment_id": pid, "amount": str(amount)})
           for pid, contract_id, amount in sorted(claimed)])
    contract_ids = sorted({contract_id for _p, contract_id, _a in claimed})
    from .charging import apply_balance_rule
    from .outbox import notify

    apply_balance_rule(contract_ids, actor=actor)
    notify(db.session.scalars(select(Account.id).where(Account.contract_id.in_(contract_ids))
                              .order_by(Account.id)).all(), "ledger.correction")
    done = set(ids)
    expire_loaded(PromisedPayment, ["status", "returned_at"], lambda x: x.id in done)
    expire_loaded(Contract, ["balance"], lambda x: x.id in sums)
    return ids
