"""Voluntary freeze (holdup, «добровольная блокировка»): the operator's limits, freezing an
account, unfreezing it early, and the set-based end of freezes whose last day has passed.

A freeze is the account blocked with the reason ``subscriber`` (models.BLOCK_REASONS) from the
day it starts through its last day ``until`` (BILLING_TZ, inclusive), so everything else follows
the existing rules rather than new ones: the charge run and ``charge_accounts`` refund the frozen
days of a month already paid (a subscriber block refunds the days it removes) and charge nothing
for them; the end (the day after ``until``, or earlier on request) gives the days back and
charges from that day; platforms see the block through the outbox as every block. A balance or
manager block stays as it is; a freeze only adds and removes its own reason.

The operator's limits (``FreezeRule`` row 1, admin-edited): a period of ``min_days`` to
``max_days`` days (counting the first and the last), at most ``per_year`` freezes started in a
calendar year, ``cooldown_days`` from the end of one to the start of the next, and a ``fee``
charged through the ledger when the freeze starts (a charge keyed ``freeze-fee:<id>``).

Refusals name their field: ``until`` for the period (too short, too long, in the past), and
``freeze`` for the rest (off, the account not in service, already frozen, the year's limit,
the cooldown with the first day allowed, no money for the fee).

Concurrency: starting and ending hold the contract's lock (accounts.lock_account) and re-read
under it; a unique index allows one freeze in force per account and the form's one-time key
makes a repeat (a double click) answer the first freeze. The end job claims due freezes with a
guarded UPDATE (status 'active' -> 'ended'), so parallel runs end each once.

Notices: ``freeze_started`` (data {"account_login": ..., "starts_on", "frozen_until": "YYYY-MM-DD",
"fee": "0.00"}, dedup
``freeze_started:<id>``) and ``freeze_ended`` (data {"account_login": ..., "ended_on": "YYYY-MM-DD",
"early": bool}, dedup ``freeze_ended:<id>``), per account.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Date, String, bindparam, case, cast, func, insert, literal, select, update

from ..extensions import db, expire_loaded
from ..models import BLOCK_REASONS, Account, AuditEntry, Contract, Freeze, FreezeRule, Notice, utcnow
from . import audit, clock, inputs, ledger, notices
from .accounts import block, lock_account, unblock
from .blocking import money_left
from .errors import BillingError
from .sqlfrag import iso_date, json_false, json_object

RULE_ID = 1
FIELD = "freeze"
SUBSCRIBER = BLOCK_REASONS["subscriber"]
MAX_DAYS = 366
FEE_KEY = "freeze-fee"
FEE_COMMENT = "fee for a voluntary freeze"

# Refusals (the pages translate each); the period's name the field ``until``.
OFF = "voluntary freezes are off"
NOT_IN_SERVICE = "the account is not in service"
FROZEN = "the account is frozen already"
YEAR_LIMIT = "the limit of freezes for this year is reached"
NO_MONEY = "not enough money for the fee"
NOT_FROZEN = "the account is not frozen"
COOLDOWN = "the pause between freezes is not over yet"
PAST = "must be today or later"
TOO_SHORT = "shorter than the shortest freeze allowed"
TOO_LONG = "longer than the longest freeze allowed"
REFUSALS = (OFF, NOT_IN_SERVICE, FROZEN, YEAR_LIMIT, COOLDOWN, NO_MONEY, NOT_FROZEN)


# -- the rules ----------------------------------------------------------------------------------

def rule() -> FreezeRule:
    """The operator's limits (an unsaved, disabled default until an admin saves them)."""
    return db.session.get(FreezeRule, RULE_ID) or FreezeRule(
        id=RULE_ID, enabled=False, min_days=7, max_days=90, per_year=2, cooldown_days=30, fee=Decimal("0"))


def _whole(errors: dict, data: dict, field: str, low: int, high: int) -> int | None:
    raw = data.get(field)
    if isinstance(raw, str):
        raw = raw.strip()
        value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 5 else None
    else:
        value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if raw in (None, ""):
        errors[field] = "required"
    elif value is None:
        errors[field] = "must be a whole number"
    elif not low <= value <= high:
        errors[field] = f"from {low} to {high}"
    else:
        return value
    return None


def save_rule(data: dict, *, actor: str) -> FreezeRule:
    """Save the limits: enabled, min_days and max_days (1-366, min <= max), per_year (1-12),
    cooldown_days (0-366), fee (>= 0). Every error names its field; nothing is saved then."""
    errors: dict[str, str] = {}
    min_days = _whole(errors, data, "min_days", 1, MAX_DAYS)
    max_days = _whole(errors, data, "max_days", 1, MAX_DAYS)
    per_year = _whole(errors, data, "per_year", 1, 12)
    cooldown = _whole(errors, data, "cooldown_days", 0, MAX_DAYS)
    fee = Decimal("0")
    if data.get("fee") not in (None, ""):
        try:
            fee = inputs.parse_amount(data["fee"], "fee")
        except BillingError as e:
            errors.update(e.fields)
        else:
            if fee < 0:
                errors["fee"] = "must not be negative"
    if min_days is not None and max_days is not None and min_days > max_days:
        errors["min_days"] = "must not be over the maximum"
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        errors["enabled"] = "true or false"
    if errors:
        raise BillingError(errors)
    current = db.session.get(FreezeRule, RULE_ID)
    before = _rule_dict(current) if current is not None else None
    if current is None:
        current = FreezeRule(id=RULE_ID)
        db.session.add(current)
    current.enabled, current.min_days, current.max_days = enabled, min_days, max_days
    current.per_year, current.cooldown_days, current.fee = per_year, cooldown, fee
    current.updated_at, current.updated_by = utcnow(), actor
    db.session.flush()
    audit.record(actor, "freeze.rules", current, "voluntary freeze rules saved", before=before,
                 after=_rule_dict(current), object_type="freeze_rule")
    return current


def _rule_dict(r: FreezeRule) -> dict:
    return {"enabled": r.enabled, "min_days": r.min_days, "max_days": r.max_days, "per_year": r.per_year,
            "cooldown_days": r.cooldown_days, "fee": str(r.fee)}


# -- what may be done ---------------------------------------------------------------------------

def active(account: Account) -> Freeze | None:
    """The account's freeze in force, if any."""
    return db.session.scalar(select(Freeze).where(Freeze.account_id == account.id, Freeze.status == "active"))


def started_in_year(account: Account, today: date) -> int:
    return db.session.scalar(select(func.count()).select_from(Freeze).where(
        Freeze.account_id == account.id, Freeze.starts_on.between(date(today.year, 1, 1), date(today.year, 12, 31))))


def last_ended(account: Account) -> date | None:
    return db.session.scalar(select(func.max(Freeze.ended_on)).where(Freeze.account_id == account.id,
                                                                      Freeze.status == "ended"))


@dataclass(frozen=True)
class Offer:
    """What the rules allow this account today: the earliest and latest last day, the fee; or why not."""
    refusal: str | None
    first_until: date | None = None
    last_until: date | None = None
    fee: Decimal = Decimal("0")
    available_from: date | None = None  # with COOLDOWN: the first day a new freeze may start


def offer(account: Account, today: date | None = None, *, staff: bool = False) -> Offer:
    """The period the account may be frozen for from today, or the first rule that refuses.
    Staff are not held to the operator's switch, yearly limit and cooldown (they decide), only
    to the account's state; the period limits hold for everyone."""
    today = today or clock.today()
    r = rule()
    if not r.enabled and not staff:
        return Offer(OFF)
    if account.status not in ("active", "blocked"):
        return Offer(NOT_IN_SERVICE)
    if account.block_reasons & SUBSCRIBER or active(account) is not None:
        return Offer(FROZEN)
    if not staff:
        if started_in_year(account, today) >= r.per_year:
            return Offer(YEAR_LIMIT)
        ended = last_ended(account)
        if ended is not None and today < ended + timedelta(days=r.cooldown_days):
            return Offer(COOLDOWN, available_from=ended + timedelta(days=r.cooldown_days))
    fee = Decimal("0") if staff else (r.fee or Decimal("0"))
    return Offer(None, first_until=today + timedelta(days=r.min_days - 1),
                 last_until=today + timedelta(days=r.max_days - 1), fee=fee)


def _parse_until(raw, o: Offer, today: date) -> date:
    if isinstance(raw, date):
        until = raw
    else:
        raw = raw.strip() if isinstance(raw, str) else raw
        if raw in (None, ""):
            raise BillingError({"until": "required"})
        try:
            until = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
        except ValueError:
            until = None
        if until is None:
            raise BillingError({"until": "a date (YYYY-MM-DD)"})
    if until < today:
        raise BillingError({"until": PAST})
    if until < o.first_until:
        raise BillingError({"until": TOO_SHORT})
    if until > o.last_until:
        raise BillingError({"until": TOO_LONG})
    return until


# -- freezing and unfreezing --------------------------------------------------------------------

def _lock(account: Account) -> None:
    lock_account(account)  # the contract's lock; then the account's state afresh
    db.session.refresh(account, ["status", "block_reasons", "status_changed_on"])


def start(account: Account, until, *, actor: str, staff: bool = False,
          request_key: str | None = None) -> tuple[Freeze, bool]:
    """Freeze ``account`` from today through ``until``. Returns (freeze, created): a repeat of
    ``request_key`` answers the first freeze and does nothing more. Refusals: BillingError
    naming ``until`` or ``freeze`` (the module docstring)."""
    if request_key is not None:
        inputs.parse_text(request_key, "nonce", inputs.text_limit(Freeze.__table__.c.request_key))
    _lock(account)
    if request_key is not None:
        done = db.session.scalar(select(Freeze).filter_by(request_key=request_key))
        if done is not None:
            if done.account_id != account.id:
                raise BillingError({"nonce": "already used"})
            return done, False
    today = clock.today()
    o = offer(account, today, staff=staff)
    if o.refusal:
        raise BillingError({FIELD: o.refusal})
    until = _parse_until(until, o, today)
    contract = account.contract
    if o.fee and money_left(contract) - o.fee < 0 and not contract.do_not_block:
        raise BillingError({FIELD: NO_MONEY})
    f = Freeze(account_id=account.id, contract_id=account.contract_id, starts_on=today, until=until,
               status="active", fee=o.fee, started_by=actor, created_at=utcnow(), request_key=request_key)
    db.session.add(f)
    db.session.flush()
    if o.fee:
        ledger.post(contract.id, "charge", -o.fee, actor=actor, comment=FEE_COMMENT,
                    idempotency_key=f"{FEE_KEY}:{f.id}", apply_rules=False)
    block(account, "subscriber", actor=actor)  # refunds the frozen days, tells the platforms, balance rule
    notices.record(subscriber_id=contract.subscriber_id, contract_id=contract.id, account_id=account.id,
                   event="freeze_started", dedup_key=f"freeze_started:{f.id}",
                   data={"account_login": account.login, "starts_on": f.starts_on.isoformat(),
                         "frozen_until": until.isoformat(), "fee": f"{o.fee:.2f}"})
    audit.record(actor, "freeze.start", account, f"frozen until {until.isoformat()}",
                 after={"freeze_id": f.id, "until": until.isoformat(), "fee": str(o.fee)})
    return f, True


def end(account: Account, *, actor: str) -> Freeze:
    """Unfreeze ``account`` today, before its last day (the subscriber's or staff's request)."""
    _lock(account)
    f = db.session.scalar(select(Freeze).where(Freeze.account_id == account.id, Freeze.status == "active")
                          .execution_options(populate_existing=True))
    if f is None:
        raise BillingError({FIELD: NOT_FROZEN})
    today = clock.today()
    # guarded, as the end job claims: whichever of the two comes second finds nothing to end
    claimed = db.session.execute(update(_freezes).where(_freezes.c.id == f.id, _freezes.c.status == "active")
                                 .values(status="ended", ended_on=today, ended_by=actor)).rowcount
    if not claimed:
        raise BillingError({FIELD: NOT_FROZEN})
    db.session.refresh(f)
    db.session.refresh(account, ["status", "block_reasons", "status_changed_on"])
    if account.status == "blocked" and account.block_reasons & SUBSCRIBER:
        unblock(account, "subscriber", actor=actor)  # charges the days given back, platforms, balance rule
    notices.record(subscriber_id=account.contract.subscriber_id, contract_id=account.contract_id,
                   account_id=account.id, event="freeze_ended", dedup_key=f"freeze_ended:{f.id}",
                   data={"account_login": account.login, "ended_on": today.isoformat(), "early": True})
    audit.record(actor, "freeze.end", account, "unfrozen on request", after={"freeze_id": f.id})
    return f


# -- the end job (set-based) --------------------------------------------------------------------

_accounts, _freezes = Account.__table__, Freeze.__table__


def end_due(today: date | None = None, *, actor: str = "system", limit: int | None = None) -> list[int]:
    """End the freezes whose last day is before ``today`` (default: today in BILLING_TZ), at most
    ``limit`` of them, in a few statements for all: claim them, lift the ``subscriber`` reason
    of their accounts, charge the days given back (charge_accounts), apply the balance rule,
    tell the platforms, record the notices and the audit. Returns the accounts unfrozen."""
    from .charging import apply_balance_rule, charge_accounts
    from .outbox import notify

    today = today or clock.today()
    fz, a = _freezes.c, _accounts.c
    due = select(fz.id).where(fz.status == "active", fz.until < today).order_by(fz.until, fz.id).limit(limit)
    claimed = db.session.execute(
        update(_freezes).where(fz.id.in_(due), fz.status == "active")
        .values(status="ended", ended_on=today, ended_by=actor)
        .returning(fz.id, fz.account_id, fz.contract_id)).all()
    if not claimed:
        return []
    account_ids = sorted({r.account_id for r in claimed})
    contract_ids = sorted({r.contract_id for r in claimed})
    left = a.block_reasons.op("&")(~SUBSCRIBER)
    lifted = db.session.execute(
        update(_accounts).where(a.id.in_(account_ids), a.status == "blocked", a.block_reasons.op("&")(SUBSCRIBER) != 0)
        .values(status=case((left == 0, "active"), else_="blocked"), block_reasons=left, status_changed_on=today)
        .returning(a.id)).scalars().all()
    expire_loaded(Account, ["status", "block_reasons", "status_changed_on"], lambda x: x.id in set(lifted))
    expire_loaded(Freeze, ["status", "ended_on", "ended_by"], lambda x: x.account_id in set(account_ids))
    if lifted:
        charge_accounts(lifted, actor=actor, reason="account.unblock")
        apply_balance_rule(contract_ids, actor=actor)
        notify(lifted, "account.unblock")
    now = utcnow()
    db.session.execute(insert(AuditEntry), [
        dict(at=now, actor=actor, action="freeze.end", object_type="account", object_id=r.account_id,
             summary="freeze ended on its date", before=None, after={"freeze_id": r.id}) for r in claimed])
    ids = [r.id for r in claimed]
    login = select(a.login).where(a.id == fz.account_id).scalar_subquery()
    stmt = select(
        select(Contract.__table__.c.subscriber_id).where(Contract.__table__.c.id == fz.contract_id).scalar_subquery(),
        fz.contract_id, fz.account_id, literal("freeze_ended"),
        json_object(literal("account_login"), login,
                    literal("ended_on"), iso_date(bindparam("f_today", today, type_=Date())),
                    literal("early"), json_false(db.session.get_bind().dialect.name)),
        literal(False), literal("freeze_ended:") + cast(fz.id, String),
        literal(now, type_=Notice.__table__.c.created_at.type),
    ).where(fz.id.in_(ids))
    notices.insert_from_select(["subscriber_id", "contract_id", "account_id", "event", "data", "critical",
                                "dedup_key", "created_at"], stmt)
    return account_ids

