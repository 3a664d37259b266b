"""What a subscriber may do and see in the cabinet: log in, see only their own contracts and
accounts, read the ledger with its running balance, block and unblock their own account
(reason ``subscriber``), and change the cabinet password knowing the old one.

The web layer (portal.cabinet) parses input and renders; the decisions are here. Messages are
English field messages, like the rest of billing; the pages translate them.
"""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Account, AssignedService, Contract, Subscriber
from ..models.staff import check_password_or_dummy, session_fingerprint
from . import accounts as acc
from . import audit, freeze
from .blocking import top_up_to_unblock  # noqa: F401  (the cabinet pages show it)
from .errors import BillingError, NotFound

FREEZE_INSTEAD = "freeze the account instead: voluntary freezes are on"

PASSWORD_MIN, PASSWORD_MAX = 8, 128
# Reasons a subscriber cannot lift in the cabinet: a payment lifts the balance block, the
# operator lifts their own.


def actor(subscriber: Subscriber) -> str:
    """How the audit log names a subscriber acting in the cabinet."""
    return f"cabinet:{subscriber.cabinet_login}"


# -- logging in ---------------------------------------------------------------------------------

def authenticate(login: str, password: str) -> Subscriber | None:
    """The subscriber with this cabinet login and password, or None. An unknown login checks a
    dummy hash: the same work and time as a known one, so the answer time tells nothing."""
    subscriber = None
    if login and len(login) <= 64 and "\x00" not in login:
        subscriber = db.session.scalar(select(Subscriber).filter_by(cabinet_login=login))
    if check_password_or_dummy(subscriber.cabinet_password_hash if subscriber else None, password or ""):
        return subscriber
    return None


def session_key(subscriber: Subscriber) -> str:
    """A fingerprint of the current password hash and session version, kept in the session: a
    password change or a logout makes every other session of this subscriber stale (cookie
    sessions cannot be revoked otherwise); the staff's sessions work the same way."""
    return session_fingerprint(subscriber.cabinet_password_hash, subscriber.cabinet_session_version)


def end_sessions(subscriber: Subscriber) -> None:
    """Logging out ends every session of the subscriber, copies of the cookie included."""
    subscriber.cabinet_session_version = (subscriber.cabinet_session_version or 0) + 1
    db.session.flush()


def session_subscriber(subscriber_id, key) -> Subscriber | None:
    """The subscriber a cabinet session belongs to, if it is still valid."""
    if not isinstance(subscriber_id, int):
        return None
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or not subscriber.cabinet_login or session_key(subscriber) != key:
        return None
    return subscriber


# -- only their own -----------------------------------------------------------------------------

def own_contract(subscriber: Subscriber, contract_id: int) -> Contract:
    """The subscriber's contract; a foreign or unknown id is NotFound (never "forbidden", so
    that ids of other subscribers cannot be probed)."""
    contract = db.session.get(Contract, contract_id) if isinstance(contract_id, int) else None
    if contract is None or contract.subscriber_id != subscriber.id:
        raise NotFound({"contract_id": "not found"})
    return contract


def own_account(subscriber: Subscriber, account_id: int) -> Account:
    account = db.session.get(Account, account_id) if isinstance(account_id, int) else None
    if account is None or account.contract.subscriber_id != subscriber.id:
        raise NotFound({"account_id": "not found"})
    return account


# -- money --------------------------------------------------------------------------------------

def blocked_by_balance(contract: Contract) -> bool:
    """Whether any account of the contract is blocked by the balance rule right now."""
    return any(a.status == "blocked" and "balance" in a.reasons for a in contract.accounts)


# -- the account --------------------------------------------------------------------------------

def live_services(account: Account) -> list[AssignedService]:
    """Assigned services still in force (active or suspended), without the tariff's own fee
    service, which the page shows as the tariff's monthly fee."""
    fees = acc.fee_service_ids(account)
    return [s for s in account.services if s.state != "ended" and s.service_id not in fees]


def may_block(account: Account) -> bool:
    return account.status == "active"


def may_unblock(account: Account) -> bool:
    return account.status == "blocked" and "subscriber" in account.reasons


def block_own(subscriber: Subscriber, account: Account) -> Account:
    """The subscriber's voluntary block (e.g. while away): charging stops from today."""
    if account.status != "active":
        raise BillingError({"status": f"cannot block an account that is {account.status}"})
    if freeze.rule().enabled:  # then the freeze, with the operator's limits, is the way (billing.freeze)
        raise BillingError({"freeze": FREEZE_INSTEAD})
    return acc.block(account, "subscriber", actor=actor(subscriber))


def unblock_own(subscriber: Subscriber, account: Account) -> Account:
    """Lift the subscriber's own block; a balance or manager block stays (and says so). A
    freeze in force ends with it (its record says so)."""
    if freeze.active(account) is not None:
        freeze.end(account, actor=actor(subscriber))
        return account
    return acc.unblock(account, "subscriber", actor=actor(subscriber))


# -- password -----------------------------------------------------------------------------------

def change_password(subscriber: Subscriber, old: str, new: str, repeat: str) -> None:
    """Set a new cabinet password; the old one must be right, the new one 8-128 characters and
    typed twice the same. Errors name the field: old_password, new_password, repeat_password."""
    errors: dict[str, str] = {}
    if not old:
        errors["old_password"] = "required"
    elif not subscriber.check_cabinet_password(old):
        errors["old_password"] = "wrong password"
    if not new:
        errors["new_password"] = "required"
    elif len(new) < PASSWORD_MIN:
        errors["new_password"] = "at least 8 characters"
    elif len(new) > PASSWORD_MAX:
        errors["new_password"] = "at most 128 characters"
    elif old and new == old:
        errors["new_password"] = "the same as the old password"
    if new and repeat != new and "new_password" not in errors:
        errors["repeat_password"] = "the passwords do not match"
    if errors:
        raise BillingError(errors)
    subscriber.set_cabinet_password(new)
    audit.record(actor(subscriber), "subscriber.cabinet_password", subscriber, "cabinet password changed")
