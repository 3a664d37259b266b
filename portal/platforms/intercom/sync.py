"""Billing state -> «Интерсвязь» profile and address: the one place for the intercom rules.

Desired state (``access_level``, from billing data only):

* ``absent`` — the account has no ``isvyaz_login``, is not activated yet, is disabled, or has
  no intercom service in force (none assigned, ended, expired, not started yet): its address
  must be on no profile;
* ``limited`` — the account is blocked for any reason (balance, manager, subscriber), or its
  intercom service is suspended: the door opens with the key; no calls to the handset, the
  app or a landline; no live or archive video (the entry code too, when the connection's
  option ``limited_open_code`` is true);
* ``full`` — otherwise: everything on.

The address (house and flat of the account) sits on the profile whose login is the account's
``isvyaz_login``, keyed by our account id, so several accounts (flats) of one person share one
profile, each with its own access. The profile is linked when it exists, or created from the
subscriber card (name, phones) when it does not. A profile we created is deleted once its last
address has gone; one we only linked is left alone.

Reconcile reads the profile, applies the difference and returns what the platform has. It
takes the Redis lock of each profile it changes (``profile_lock``) around the
read-modify-write, so that jobs of accounts sharing a profile never race, and records where an
address may be (``store``) before putting it there, so that a changed ``isvyaz_login`` moves it
from the old profile even after a failure half-way.
"""
from __future__ import annotations

from contextlib import contextmanager

from ...billing import clock
from ...queue import get_redis
from ..http import PlatformError
from . import store
from .client import ACCESS_FIELDS, IntercomClient

FIELD = "isvyaz_login"
PLATFORM = "intercom"
LEVELS = ("full", "limited", "absent")
LOCK_SECONDS = 60


# -- desired state --------------------------------------------------------------------------------

def isvyaz_login(account) -> str | None:
    return (account.extra.get(FIELD) or "").strip() or None


def intercom_services(account) -> list:
    """The account's intercom services in force today (assigned, not ended, within dates)."""
    today = clock.today()
    return [s for s in account.services
            if s.service.platform == PLATFORM and s.state != "ended" and s.starts_on <= today
            and (s.ends_on is None or s.ends_on >= today)]


def access_level(account) -> tuple[str, list[str]]:
    """(level, why): ``full``, ``limited`` or ``absent``, and the reasons for anything less
    than full (``no_login``, ``inactive``, ``disabled``, ``no_service``, ``blocked:<reason>``,
    ``service_suspended``)."""
    if isvyaz_login(account) is None:
        return "absent", ["no_login"]
    if account.status in ("inactive", "disabled"):
        return "absent", [account.status]
    services = intercom_services(account)
    if not services:
        return "absent", ["no_service"]
    if account.status == "blocked":
        return "limited", [f"blocked:{r}" for r in account.reasons]
    if all(s.state == "suspended" for s in services):
        return "limited", ["service_suspended"]
    return "full", []


def access_profile(level: str, options: dict | None = None) -> dict | None:
    """The access flags (protocol section 5.2) of a level; None for ``absent``."""
    if level == "full":
        return {f: True for f in ACCESS_FIELDS}
    if level == "limited":
        access = {f: False for f in ACCESS_FIELDS}
        access["open_key"] = True
        access["open_code"] = bool((options or {}).get("limited_open_code"))
        return access
    return None


def level_of(access: dict | None) -> str:
    """The level a platform's access flags amount to: full, limited, or ``other`` (drift)."""
    if not access:
        return "absent"
    if all(access.get(f) for f in ACCESS_FIELDS):
        return "full"
    if access.get("open_key") and not any(access.get(f) for f in ACCESS_FIELDS if f not in ("open_key", "open_code")):
        return "limited"
    return "other"


def desired_state(account) -> dict:
    """What the platform must show for this account (JSON-friendly)."""
    level, why = access_level(account)
    subscriber = account.contract.subscriber
    return {
        "account_id": account.id,
        "login": isvyaz_login(account),
        "level": level,
        "why": why,
        "address": {"house_id": account.house or "", "flat": account.flat or ""},
        "profile": {"full_name": subscriber.full_name, "phones": list(subscriber.phones or [])},
    }


# -- reconcile ----------------------------------------------------------------------------------

@contextmanager
def profile_lock(login: str):
    """One job at a time per profile (accounts sharing it must not race)."""
    lock = get_redis().lock(f"portal:lock:intercom:profile:{login}", timeout=LOCK_SECONDS,
                            blocking_timeout=LOCK_SECONDS)
    with lock:
        yield


def reconcile(client: IntercomClient, account_login: str, desired: dict | None) -> dict | None:
    """Put the account's address on its profile with the access billing wants, take it off
    every other profile; returns the address as the platform has it (None: on no profile)."""
    account_id = desired["account_id"] if desired else store.account_id(account_login)
    if account_id is None:
        return None
    target = desired["login"] if desired and desired["level"] != "absent" else None
    for old in store.attached_logins(account_id):
        if old != target:
            with profile_lock(old):
                client.remove_address(old, account_id)
                store.detach(account_id, old)
                _tidy(client, old)
    if target is None:
        return None
    with profile_lock(target):
        return _attach(client, target, account_id, desired)


def _attach(client: IntercomClient, login: str, account_id: int, desired: dict) -> dict:
    profile = client.get_profile(login)
    if profile is None:
        card = desired["profile"]
        store.note_profile(login, created_by_us=True)  # before the call: a profile we made is ours
        if not client.create_profile(login, card["full_name"], card["phones"]):
            store.note_profile(login, created_by_us=False)  # created meanwhile by someone else
        profile = client.get_profile(login)
        if profile is None:
            raise PlatformError(f"profile {login!r} was created but cannot be read back")
    else:
        store.note_profile(login, created_by_us=None)
    store.attach(account_id, login)  # before the PUT: where the address may be
    want = {"house_id": desired["address"]["house_id"], "flat": desired["address"]["flat"],
            "access": access_profile(desired["level"], client.options)}
    addresses = list(profile.get("addresses") or [])
    have = next((a for a in addresses if str(a.get("account_id")) == str(account_id)), None)
    if have is None or {k: have.get(k) for k in want} != want:
        client.upsert_address(login, account_id, **want)
        addresses = [a for a in addresses if a is not have] + [{"account_id": account_id, **want}]
        profile = {**profile, "addresses": addresses}
    store.snapshot(login, profile)
    return {"login": login, "level": level_of(want["access"]), "address": {k: want[k] for k in ("house_id", "flat")},
            "access": want["access"]}


def _tidy(client: IntercomClient, login: str) -> None:
    """After an address left a profile: delete the profile if we created it and it is empty;
    forget a linked one we have no address on any more."""
    profile = client.get_profile(login)
    if profile is None:
        store.forget_profile(login)
        return
    if not profile.get("addresses"):
        if store.created_by_us(login):
            client.delete_profile(login)
            store.forget_profile(login)
            return
        if not store.attached_accounts(login):
            store.forget_profile(login)
            return
    store.snapshot(login, profile)


# -- reading the platform without changing it (lookup, check, drift) -------------------------------

def lookup(client: IntercomClient, login: str) -> dict | None:
    """The profile as the platform has it (for "look up before creating the account")."""
    return client.get_profile(login)
