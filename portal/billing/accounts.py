"""Accounts: creation, changes, status transitions and assigned services.

Every change that a platform must see writes an outbox row (billing.outbox) and
posts at once what it made due or refundable (billing.charging.charge_accounts: the charge
run's rules for that account), all in the caller's transaction.
"""
from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import Integer, bindparam, func, insert, select, union, union_all, update
from sqlalchemy.orm import aliased, contains_eager, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import (
    BLOCK_REASONS,
    Account,
    Agent,
    AssignedService,
    CatalogService,
    Contract,
    ExtraFieldDefinition,
    ExtraFieldValue,
    Tariff,
    account_multi_tariffs,
    tariff_services,
    utcnow,
)
from . import audit, clock, driver_sql, hooks, notice_events
from .crypto import encrypt
from .errors import BillingError
from .outbox import notify

LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def snapshot(account: Account) -> dict:
    return {"status": account.status, "reasons": account.reasons,
            "tariff_id": account.tariff_id, "multi_tariff_ids": [t.id for t in account.multi_tariffs]}


def _after_change(account: Account, action: str, actor: str, before: dict | None, summary: str = "",
                  service: AssignedService | None = None, charge_key: tuple | None = None) -> None:
    """Charge for what the change added or removed, apply the balance rule, audit (the state
    after it: of ``service`` for a service action, else of the account), notify.
    ``charge_key``: (idempotency key, comment) for the charge of ``service`` (charging.charge_accounts)."""
    from .charging import apply_balance_rule, charge_one_contract

    db.session.flush()
    idle = charge_one_contract(account.contract_id, [account.id], actor=actor, expire=_may_expire(account),
                               reason=action,
                               keyed=(service.id, *charge_key) if service is not None and charge_key else None)
    if not idle:  # (a contract that stays in credit: nothing for the rule to do)
        apply_balance_rule([account.contract_id], actor=actor)  # expires what it changes on `account`
    audit.record(actor, action, account, summary or account.login, before=before,
                 after=_service_facts(service) if service is not None else snapshot(account))
    notify([account.id], action)


def _may_expire(account: Account) -> bool:
    """Whether a service of the account may be past its end date and still not ended (the
    charge run's expiry then has work); False only when its loaded services show none."""
    if "services" not in account.__dict__:
        return True
    today = clock.today()
    return any(s.state != "ended" and s.ends_on is not None and s.ends_on < today for s in account.services)


# -- creation and changes ---------------------------------------------------------------------

def _validate_extra(errors: dict, extra) -> dict[ExtraFieldDefinition, str]:
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        errors["extra"] = "an object of field name -> value"
        return {}
    defs = {d.name: d for d in db.session.scalars(select(ExtraFieldDefinition))}
    out = {}
    for name, value in extra.items():
        d = defs.get(name)
        key = f"extra.{name}"
        if d is None:
            errors[key] = "no such extra field"
            continue
        if value is None or value == "":
            continue
        if d.type == "integer":
            if isinstance(value, bool) or not re.fullmatch(r"-?\d{1,18}", str(value)):
                errors[key] = "must be an integer"
                continue
        elif d.type == "boolean":
            if str(value).lower() not in ("true", "false", "1", "0"):
                errors[key] = "must be true or false"
                continue
            value = "true" if str(value).lower() in ("true", "1") else "false"
        value = str(value)
        if len(value) > 500:
            errors[key] = "at most 500 characters"
        elif d.pattern and not re.fullmatch(d.pattern, value):
            errors[key] = f"does not match {d.pattern}"
        else:
            out[d] = value
    return out


def _check_tariffs(errors: dict, tariff_id, multi_ids) -> tuple[Tariff | None, list[Tariff]]:
    tariff = None
    if tariff_id is not None:
        tariff = db.session.get(Tariff, tariff_id) if isinstance(tariff_id, int) else None
        if tariff is None:
            errors["tariff_id"] = "no such tariff"
        elif tariff.is_multi:
            errors["tariff_id"] = "a multi-tariff cannot be the main tariff"
    multis = []
    if multi_ids:
        if not isinstance(multi_ids, list) or not all(isinstance(i, int) for i in multi_ids):
            errors["multi_tariff_ids"] = "a list of tariff ids"
        else:
            multis = [db.session.get(Tariff, i) for i in multi_ids]
            if any(t is None or not t.is_multi for t in multis):
                errors["multi_tariff_ids"] = "each must be an existing multi-tariff"
    return tariff, multis


def create_account(data: dict, *, actor: str) -> Account:
    errors: dict = {}
    cid = data.get("contract_id")
    if not isinstance(cid, int) or db.session.get(Contract, cid) is None:
        errors["contract_id"] = "no such contract"
    login = data.get("login")
    if not isinstance(login, str) or not LOGIN_RE.match(login):
        errors["login"] = "1-64 latin letters, digits, _ . @ -"
    elif db.session.scalar(select(func.count()).select_from(Account).where(Account.login == login)):
        errors["login"] = "already taken"
    password = data.get("password")
    if password is not None and (not isinstance(password, str) or not 4 <= len(password) <= 128):
        errors["password"] = "4-128 characters"
    aid = data.get("agent_id")
    if not isinstance(aid, int) or db.session.get(Agent, aid) is None:
        errors["agent_id"] = "no such agent"
    tariff, multis = _check_tariffs(errors, data.get("tariff_id"), data.get("multi_tariff_ids"))
    for f, n in (("house", 300), ("flat", 20)):
        v = data.get(f)
        if v is not None and (not isinstance(v, str) or len(v) > n):
            errors[f] = f"text up to {n} characters"
    extra = _validate_extra(errors, data.get("extra"))
    for d in db.session.scalars(select(ExtraFieldDefinition).filter_by(required=True)):
        if d not in extra and f"extra.{d.name}" not in errors:
            errors[f"extra.{d.name}"] = "required"
    if errors:
        raise BillingError(errors)
    account = Account(contract_id=cid, login=login, agent_id=aid, tariff=tariff, multi_tariffs=multis,
                      house=data.get("house"), flat=data.get("flat"), status="inactive", block_reasons=0,
                      password_enc=encrypt(password) if password else None)
    account.extra_values = [ExtraFieldValue(field=d, value=v) for d, v in extra.items()]
    db.session.add(account)
    db.session.flush()
    audit.record(actor, "account.create", account, login, after=snapshot(account))
    return account


def update_account(account: Account, data: dict, *, actor: str) -> Account:
    """Change password, address, extra fields, tariff or multi-tariffs."""
    errors: dict = {}
    if "password" in data and data["password"] is not None and \
            (not isinstance(data["password"], str) or not 4 <= len(data["password"]) <= 128):
        errors["password"] = "4-128 characters"
    for f, n in (("house", 300), ("flat", 20)):
        v = data.get(f)
        if v is not None and (not isinstance(v, str) or len(v) > n):
            errors[f] = f"text up to {n} characters"
    if "agent_id" in data and (not isinstance(data["agent_id"], int)
                               or db.session.get(Agent, data["agent_id"]) is None):
        errors["agent_id"] = "no such agent"
    tariff, multis = _check_tariffs(errors, data.get("tariff_id"), data.get("multi_tariff_ids"))
    if tariff is not None and tariff.id != account.tariff_id and not errors:
        errors.update(hooks.check_change(account, tariff=tariff))  # e.g. Stalker has no plan for it
    extra = _validate_extra(errors, data.get("extra")) if "extra" in data else None
    if errors:
        raise BillingError(errors)
    before = snapshot(account)
    if data.get("password"):
        account.password_enc = encrypt(data["password"])
    for f in ("house", "flat", "agent_id"):
        if f in data:
            setattr(account, f, data[f])
    if extra is not None:
        current = {v.field.name: v for v in account.extra_values}
        for d, value in extra.items():
            if d.name in current:
                current[d.name].value = value
            else:
                account.extra_values.append(ExtraFieldValue(field=d, value=value))
        for name, raw in data["extra"].items():
            if raw in (None, "") and name in current:
                account.extra_values.remove(current[name])
    if "multi_tariff_ids" in data:
        account.multi_tariffs = multis
    if tariff is not None and tariff.id != account.tariff_id:
        account.tariff = tariff
    if "tariff_id" in data or "multi_tariff_ids" in data:
        _sync_tariff_services(account)
    _after_change(account, "account.update", actor, before)
    return account


# -- status transitions -------------------------------------------------------------------------

def _set_status(account: Account, status: str, reasons: int) -> None:
    # Any change of status or block reasons starts a new billing state today (charging's "since").
    if (account.status, account.block_reasons) != (status, reasons):
        account.status_changed_on = clock.today()
    account.status, account.block_reasons = status, reasons


def activate(account: Account, *, actor: str) -> Account:
    """inactive or disabled -> active (the balance rule may block it by balance at once)."""
    if account.status not in ("inactive", "disabled"):
        raise BillingError({"status": f"cannot activate an account that is {account.status}"})
    if account.tariff_id is None:
        raise BillingError({"tariff_id": "an account needs a tariff to be activated"})
    before = snapshot(account)
    _set_status(account, "active", 0)
    _sync_tariff_services(account)
    _after_change(account, "account.activate", actor, before)
    return account


def block(account: Account, reason: str = "manager", *, actor: str) -> Account:
    if reason not in ("manager", "subscriber"):
        raise BillingError({"reason": "manager or subscriber (the balance block is set by the balance rule)"})
    if account.status not in ("active", "blocked"):
        raise BillingError({"status": f"cannot block an account that is {account.status}"})
    bit = BLOCK_REASONS[reason]
    if account.block_reasons & bit:
        raise BillingError({"reason": f"already blocked by {reason}"})
    before = snapshot(account)
    _set_status(account, "blocked", account.block_reasons | bit)
    _after_change(account, "account.block", actor, before, f"blocked: {reason}")
    return account


def unblock(account: Account, reason: str = "manager", *, actor: str) -> Account:
    """Lift one reason; the balance reason goes only with money (see blocking)."""
    if reason not in ("manager", "subscriber"):
        raise BillingError({"reason": "manager or subscriber; a balance block is lifted by a payment"})
    bit = BLOCK_REASONS[reason]
    if account.status != "blocked" or not account.block_reasons & bit:
        raise BillingError({"reason": f"the account is not blocked by {reason}"})
    before = snapshot(account)
    left = account.block_reasons & ~bit
    _set_status(account, "blocked" if left else "active", left)
    _after_change(account, "account.unblock", actor, before, f"unblocked: {reason}")
    return account


def disable(account: Account, *, actor: str) -> Account:
    if account.status == "disabled":
        raise BillingError({"status": "already disabled"})
    before = snapshot(account)
    _set_status(account, "disabled", 0)
    _after_change(account, "account.disable", actor, before)
    return account


# -- assigned services --------------------------------------------------------------------------

def offered_services_select(account_id):
    """SELECT of the ids of the services the account's tariffs (main and multi-tariffs) offer,
    their fee services included (``offered_service_ids`` runs it; upsale's check embeds it).
    ``account_id``: a bound parameter, or ``Account.id`` of an enclosing query (then it is
    correlated)."""
    own, amt, ts = aliased(Account), account_multi_tariffs.c, tariff_services.c
    tariffs = union_all(select(own.tariff_id).where(own.id == account_id).correlate(Account),
                        select(amt.tariff_id).where(amt.account_id == account_id).correlate(Account))
    return union(select(ts.service_id).where(ts.tariff_id.in_(tariffs)),
                 select(Tariff.fee_service_id).where(Tariff.id.in_(tariffs), Tariff.fee_service_id.is_not(None)))


_offered = offered_services_select(bindparam("account_id", type_=Integer()))  # built once: see charging._p


def offered_service_ids(account: Account) -> set[int]:
    """The services the account's tariffs offer (the session flushes unsaved changes first)."""
    if account.id is None:
        db.session.flush()
    return set(db.session.scalars(_offered, {"account_id": account.id}))


def fee_service_ids(account: Account) -> set[int]:
    """The services that are the account's tariffs' monthly fees."""
    return {t.fee_service_id for t in [account.tariff, *account.multi_tariffs] if t is not None and t.fee_service_id}


def _sync_tariff_services(account: Account) -> None:
    """Tariff fees are assigned services of their own; services no tariff offers any more end."""
    today = clock.today()
    offered = offered_service_ids(account)
    live = [s for s in account.services if s.state != "ended"]
    tv_platforms = _tv_platforms(account)
    for s in live:
        if s.service_id not in offered and not (s.service.iptv_kind and s.service.platform in tv_platforms):
            _end(s, today)
    if account.status in ("inactive",):
        return
    have = {s.service_id for s in live if s.state != "ended"}
    for fee_id in fee_service_ids(account) - have:
        db.session.add(AssignedService(account=account, service_id=fee_id, starts_on=today, state="active",
                                       state_changed_on=today))


def _tv_platforms(account: Account) -> set[str]:
    """Platforms on which the account's tariffs offer TV services (services with an IPTV kind).
    A TV subscription stays when the tariffs change as long as they still offer TV on its
    platform: switching between two internet tariffs does not lose it."""
    return {s.platform for t in [account.tariff, *account.multi_tariffs] if t is not None
            for s in t.services if s.iptv_kind and s.platform}


def replaced_by(account: Account, service: CatalogService) -> list[AssignedService]:
    """What assigning ``service`` replaces: an account holds at most one basic TV service per
    platform, so a second basic replaces the first (additional ones are unlimited)."""
    if service.iptv_kind != "basic":
        return []
    return [s for s in account.services if s.state != "ended" and s.service_id is not None
            and s.service.iptv_kind == "basic" and s.service.platform == service.platform]


def _end(assigned: AssignedService, today: date) -> None:
    yesterday = today - timedelta(days=1)
    assigned.state = "ended"
    assigned.state_changed_on = today
    if assigned.ends_on is None or assigned.ends_on > yesterday:
        assigned.ends_on = max(yesterday, assigned.starts_on - timedelta(days=1))
    notice_events.service_ended(assigned)


_SERVICES_OF = (select(AssignedService).options(joinedload(AssignedService.service))
                .where(AssignedService.account_id == bindparam("account_id")))


_LOCK_CONTRACT = (select(Contract).where(Contract.id == bindparam("cid")).with_for_update()
                  .execution_options(populate_existing=True))


def lock_account(account: Account) -> None:
    """Serialise changes to one account's services and money until the transaction ends, by
    locking its contract: a row lock on PostgreSQL; on SQLite the database's write lock, taken by
    a no-op write (pysqlite opens the transaction at the first write, so nothing read before it
    is stale). Contract first, as the ledger, the charge run and the balance rule go (contract,
    then accounts), so no two of them wait on each other. Then the contract's balance and the
    account's services are read again (a parallel change may have committed while we waited).
    Once per account and transaction."""
    db.session.connection()  # begin the transaction, so that the memo below is keyed on it
    txn = db.session().get_transaction()
    held = db.session.info.get("account_locks")
    if held is not None and held[0] is txn and account.id in held[1]:
        return
    db.session.flush()
    c = Contract.__table__.c
    if db.session.get_bind().dialect.name == "postgresql":
        # the lock and the fresh row in one round trip (the account's contract then comes from
        # the identity map)
        db.session.execute(_LOCK_CONTRACT, {"cid": account.contract_id}).one()
    else:
        db.session.execute(update(Contract.__table__).where(c.id == account.contract_id)
                           .values(do_not_block=c.do_not_block))  # an unindexed column: the cheapest write
        db.session.expire(account.contract, ["balance", "credit_limit", "do_not_block"])
    fresh = db.session.scalars(_SERVICES_OF, {"account_id": account.id},
                               execution_options={"populate_existing": True}).unique().all()
    set_committed_value(account, "services", list(fresh))
    if held is None or held[0] is not txn:
        held = db.session.info["account_locks"] = (txn, set())
    held[1].add(account.id)


_LOCKED_WITH_SERVICE = (
    select(Account, CatalogService,  # H8: and whether the account's tariffs offer it, read in the same round trip
           CatalogService.id.in_(offered_services_select(Account.id)).label("offered")).join(Account.contract)
    .join(CatalogService, CatalogService.id == bindparam("sid")).where(Account.id == bindparam("aid"))
    .options(contains_eager(Account.contract), joinedload(Account.services).joinedload(AssignedService.service))
    .with_for_update(of=Contract).execution_options(populate_existing=True)
)


def locked_with_service(account_id: int, service_id: int) -> tuple[Account, CatalogService] | None:
    """``lock_account`` from the account's id, with the catalog service a change is about: on
    PostgreSQL the account, its contract (locked, fresh), its services, the catalog service and
    whether the account's tariffs offer it in one round trip instead of four (``assign_service``
    then does not ask again in this transaction); None when either does not exist."""
    db.session.flush()
    if db.session.get_bind().dialect.name != "postgresql":  # SQLite: its write lock first (lock_account)
        c = Contract.__table__.c
        db.session.execute(update(Contract.__table__).where(
            c.id == select(Account.contract_id).where(Account.id == account_id).scalar_subquery())
            .values(do_not_block=c.do_not_block))
    row = db.session.execute(_LOCKED_WITH_SERVICE, {"aid": account_id, "sid": service_id}).unique().first()
    if row is None:
        return None
    txn = db.session().get_transaction()
    held = db.session.info.get("account_locks")
    if held is None or held[0] is not txn:
        held = db.session.info["account_locks"] = (txn, set())
    held[1].add(account_id)
    if row.offered:  # H8
        offered = db.session.info.get(_OFFERED_KEY)
        if offered is None or offered[0] is not txn:
            offered = db.session.info[_OFFERED_KEY] = (txn, set())
        offered[1].add((account_id, service_id))
    return row[0], row[1]


# H8: session.info key: (transaction, {(account id, service id)}) the account's tariffs were seen to
# offer under its lock, in this transaction (locked_with_service)
_OFFERED_KEY = "offered_under_lock"


def _offered_under_lock(account_id: int, service_id: int) -> bool:
    """Whether ``locked_with_service`` read, under the account's lock and in this transaction, that
    its tariffs offer the service (a tariff change waits on the same lock)."""
    offered = db.session.info.get(_OFFERED_KEY)
    return offered is not None and offered[0] is db.session().get_transaction() \
        and (account_id, service_id) in offered[1]


def held_copy(account: Account, service_id: int) -> AssignedService | None:
    """The live (not ended) copy of a catalog service the account holds, if any."""
    return next((s for s in account.services if s.service_id == service_id and s.state != "ended"
                 and not s.per_order), None)


ALREADY_HELD = "the account has this service already"


def done_order(account: Account, order_key: str) -> AssignedService | None:
    """The service a request with this one-time key assigned to this account, if it ran."""
    return db.session.scalar(select(AssignedService).filter_by(order_key=order_key[:64], account_id=account.id))


def assign_service(account: Account, data: dict, *, actor: str, order_key: str | None = None,
                   charge_key: tuple[str, str] | None = None) -> AssignedService:
    """Assign a catalog service, once: under the account's lock, a service the account holds
    already (not ended) is refused (ALREADY_HELD), so a double click or two purchases of one
    offer moves no money twice. ``order_key``: the request's one-time key; a repeat of it
    returns the service it assigned. ``charge_key``: (idempotency key, comment) of the charge
    posted for it now."""
    errors: dict = {}
    sid = data.get("service_id")
    service = db.session.get(CatalogService, sid) if isinstance(sid, int) else None
    if service is None:
        errors["service_id"] = "no such service"
    elif not _offered_under_lock(account.id, sid) and sid not in offered_service_ids(account):  # H8
        # a platform may know why (a Stalker package that comes with the account's plan)
        errors["service_id"] = (hooks.check_change(account, service=service).get("service_id")
                                or "the account's tariffs do not offer this service")
    else:
        errors.update(hooks.check_change(account, service=service))  # e.g. not optional in the plan
    today = clock.today()
    starts_on = data.get("starts_on") or today
    ends_on = data.get("ends_on")
    if not isinstance(starts_on, date):
        errors["starts_on"] = "a date"
    if ends_on is not None and (not isinstance(ends_on, date) or
                                (isinstance(starts_on, date) and ends_on < starts_on)):
        errors["ends_on"] = "a date not before starts_on"
    if account.status == "disabled":
        errors["account"] = "the account is disabled"
    if errors:
        raise BillingError(errors)
    lock_account(account)
    if order_key:
        first = db.session.scalar(select(AssignedService).filter_by(order_key=order_key[:64]))
        if first is not None:
            if first.account_id != account.id or first.service_id != sid:
                raise BillingError({"order_key": "already used for another request"})
            return first
    if any(s.service_id == sid and s.state != "ended" and s.ends_on is not None and s.ends_on < today
           for s in account.services):  # a copy past its end date is not held any more: end it first
        from .charging import expire_services

        expire_services(today, [account.id], actor)  # (expires the loaded copies' state)
    if held_copy(account, sid) is not None:
        raise BillingError({"service_id": ALREADY_HELD})
    for held in replaced_by(account, service):
        _end(held, today)
    assigned = _insert_assigned(account, service, starts_on=starts_on, ends_on=ends_on, state="active",
                                state_changed_on=today, order_key=order_key[:64] if order_key else None)
    _after_change(account, "service.assign", actor, None, service.name, service=assigned, charge_key=charge_key)
    notice_events.service_assigned(assigned, bought=bool(order_key or charge_key))
    return assigned


_assigned = AssignedService.__table__
# built once with every column a new copy gets bound, run by the driver on PostgreSQL (driver_sql)
_INSERT_ASSIGNED = insert(_assigned).values({c: bindparam(c, type_=_assigned.c[c].type) for c in (
    "account_id", "service_id", "per_order", "created_at", "starts_on", "ends_on", "state", "state_changed_on",
    "order_key")}).returning(_assigned.c.id)


def _insert_assigned(account: Account, service: CatalogService, **values) -> AssignedService:
    """A new assigned service by a plain INSERT, then put in the session as if it had been read
    (the ORM's unit of work for this one row cost a fifth of an upsale purchase)."""
    db.session.flush()  # what the change did before (a replaced basic's end) goes first
    row = {"account_id": account.id, "service_id": service.id, "per_order": False, "created_at": utcnow(), **values}
    assigned = AssignedService(id=driver_sql.rows(_INSERT_ASSIGNED, row)[0][0], **row)
    make_transient_to_detached(assigned)
    db.session.add(assigned)
    set_committed_value(assigned, "service", service)
    set_committed_value(assigned, "account", account)
    set_committed_value(account, "services", [*account.services, assigned])
    return assigned


def _service_facts(assigned: AssignedService) -> dict:
    """What a service action's audit entry keeps of the service."""
    return {"assigned_service_id": assigned.id, "service_id": assigned.service_id, "state": assigned.state,
            "starts_on": assigned.starts_on.isoformat(),
            "ends_on": assigned.ends_on.isoformat() if assigned.ends_on else None}


def end_service(assigned: AssignedService, *, actor: str) -> AssignedService:
    """End now: today and the rest of the period are refunded (monthly in advance)."""
    if assigned.state == "ended":
        raise BillingError({"state": "the service has ended already"})
    _end(assigned, clock.today())
    _after_change(assigned.account, "service.end", actor, None, assigned.service.name, service=assigned)
    return assigned


def set_service_expiry(assigned: AssignedService, ends_on: date | None, *, actor: str) -> AssignedService:
    if assigned.state == "ended":
        raise BillingError({"state": "the service has ended already"})
    if ends_on is not None and (not isinstance(ends_on, date) or ends_on < assigned.starts_on):
        raise BillingError({"ends_on": "a date not before the start"})
    assigned.ends_on = ends_on
    _after_change(assigned.account, "service.expiry", actor, None, f"{assigned.service.name}: {ends_on}",
                  service=assigned)
    return assigned


def set_service_state(assigned: AssignedService, state: str, *, actor: str) -> AssignedService:
    """Suspend or resume an assigned service."""
    if state not in ("active", "suspended") or assigned.state == "ended":
        raise BillingError({"state": "active or suspended, on a service that has not ended"})
    if assigned.state != state:
        assigned.state, assigned.state_changed_on = state, clock.today()
        _after_change(assigned.account, f"service.{'resume' if state == 'active' else 'suspend'}", actor, None,
                      assigned.service.name, service=assigned)
    return assigned
