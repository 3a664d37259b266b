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
subscriber card (name, phones) when it does not. Every pass that puts an address on a profile
also brings the profile's name and phones to the card's (protocol section 5.4's profile
update): always on a profile we created, on a linked one unless the connection's option
``push_linked_profiles`` is off. A profile left with no address is deleted, the linked ones
too (the operator documentation: the user leaves the platform with the service), unless the
option ``keep_linked_profiles`` is on; a profile we created is deleted always.

Account ids in the platform's answers may come as numbers or as strings (the draft contract
does not fix the JSON type): ``account_key`` is the one reading of them, everywhere.

Reconcile reads the profile, applies the difference and returns what the platform has. It
takes the Redis lock of each profile it changes (``profile_lock``) around the
read-modify-write, so that jobs of accounts sharing a profile never race, and records where an
address may be (``store``) before putting it there, so that a changed ``isvyaz_login`` moves it
from the old profile even after a failure half-way.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from ...billing import clock
from ...queue import get_redis
from ..http import PlatformError, recording
from ..reconcile import LockSet
from . import store
from .client import ACCESS_FIELDS, IntercomClient, account_key  # noqa: F401 (account_key: the one reading)
from .settings import from_options

FIELD = "isvyaz_login"
PLATFORM = "intercom"
LEVELS = ("full", "limited", "absent")
LOCK_SECONDS = 60
BATCH_SECONDS = 30  # a batch starts no profile later than this (its locks last LOCK_SECONDS)


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
        access["open_code"] = from_options(options).limited_open_code
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

def _lock_name(login: str) -> str:
    return f"portal:lock:intercom:profile:{login}"


@contextmanager
def profile_lock(login: str):
    """One job at a time per profile (accounts sharing it must not race)."""
    lock = get_redis().lock(_lock_name(login), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
    with lock:
        yield


@contextmanager
def _held(locks: LockSet, login: str):
    """The profile's lock from the batch's set (released with the set, at the end of the
    batch); or, when another job held it then, waited for as usual."""
    if _lock_name(login) in locks.busy:
        with profile_lock(login):
            yield
    else:
        yield


def reconcile(client: IntercomClient, account_login: str, desired: dict | None, sync=None) -> dict | None:
    """Put the account's address on its profile with the access billing wants, take it off
    every other profile; returns the address as the platform has it (None: on no profile).
    Every pass reads the profile, whatever ``sync`` says."""
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
        return _attach(client, target, [(account_id, desired)])[account_id]


def reconcile_batch(client: IntercomClient, items: list[tuple[int, str, dict | None]]) -> dict:
    """The full reconcile of many accounts (the registry's ``reconcile_batch`` hook): the
    flats of one profile together, under its lock, with one read of the profile for all of
    them; what our records already say is not written again. An account that must leave a
    profile goes through ``reconcile`` on its own. Returns ``{account_id: (actual, error,
    calls)}``; a call about one address is that account's, the profile's own calls (read,
    create) are the first flat's."""
    results: dict[int, tuple] = {}
    attached = store.attachments([account_id for account_id, _l, _d in items])
    groups: dict[str, list] = {}
    for account_id, account_login, desired in items:
        target = desired["login"] if desired and desired["level"] != "absent" else None
        if target is not None and attached.get(account_id, set()) <= {target}:
            groups.setdefault(target, []).append((account_id, desired))
        elif target is None and not attached.get(account_id):
            results[account_id] = (None, None, [])  # on no profile, and must be on none
        else:
            with recording() as calls:
                try:
                    results[account_id] = (reconcile(client, account_login, desired), None, calls)
                except PlatformError as e:
                    results[account_id] = (None, str(e), calls)
    known = store.profiles(list(groups))
    stale: list[str] = []
    locks = LockSet([_lock_name(login) for login in groups], LOCK_SECONDS)  # one round trip for all
    started = time.monotonic()
    try:
        for login, flats in groups.items():
            if time.monotonic() - started > BATCH_SECONDS:
                break  # the locks must not expire under us: the rest get their own jobs
            ours = {account_id for account_id, _d in flats if login in attached.get(account_id, ())}
            actual, error = {}, None
            with recording() as calls:
                try:
                    with _held(locks, login):
                        actual = _attach(client, login, flats, known=known.get(login), attached=ours, stale=stale)
                except PlatformError as e:
                    error = str(e)
            own: dict[int, list] = {account_id: [] for account_id, _d in flats}
            first = flats[0][0]
            for call in calls:
                key = call["url"].rsplit("/", 2)
                account_id = int(key[2]) if key[1] == "addresses" and key[2].isdigit() else first
                own.get(account_id, own[first]).append(call)
            for account_id, _d in flats:
                results[account_id] = (actual.get(account_id), error, own[account_id])
    finally:
        locks.release()
    store.touch(stale)
    return results


def _attach(client: IntercomClient, login: str, flats: list[tuple[int, dict]], known=None,
            attached: set[int] | None = None, stale: list | None = None) -> dict[int, dict]:
    """Put these flats on the profile (the caller holds its lock), linking or creating it;
    one read of the profile serves them all. ``known``: our stored row of the profile, read
    ahead; ``attached``: the flats our records already place on it (not written again)."""
    profile = client.get_profile(login)
    if profile is None:
        card = flats[0][1]["profile"]
        store.note_profile(login, created_by_us=True)  # before the call: a profile we made is ours
        if not client.create_profile(login, card["full_name"], card["phones"]):
            store.note_profile(login, created_by_us=False)  # created meanwhile by someone else
        profile = client.get_profile(login)
        if profile is None:
            raise PlatformError(f"profile {login!r} was created but cannot be read back")
        known = None
    elif known is None:
        store.note_profile(login, created_by_us=None)
    profile = _push_card(client, login, profile, flats[0][1]["profile"], known)
    addresses = list(profile.get("addresses") or [])
    out = {}
    for account_id, desired in flats:
        if attached is None or account_id not in attached:
            store.attach(account_id, login)  # before the PUT: where the address may be
        want = {"house_id": desired["address"]["house_id"], "flat": desired["address"]["flat"],
                "access": access_profile(desired["level"], client.options)}
        have = next((a for a in addresses if account_key(a.get("account_id")) == account_id), None)
        if have is None or {k: have.get(k) for k in want} != want:
            client.upsert_address(login, account_id, **want)
            addresses = [a for a in addresses if a is not have] + [{"account_id": account_id, **want}]
        out[account_id] = {"login": login, "level": level_of(want["access"]),
                           "address": {k: want[k] for k in ("house_id", "flat")}, "access": want["access"]}
    store.snapshot(login, {**profile, "addresses": addresses}, stored=known, stale=stale)
    return out


def card_differs(card: dict, profile: dict) -> bool:
    """Do the profile's name and phones differ from the subscriber card's?"""
    return ((profile.get("full_name") or "") != (card.get("full_name") or "")
            or list(profile.get("phones") or []) != list(card.get("phones") or []))


def _push_card(client: IntercomClient, login: str, profile: dict, card: dict, known=None) -> dict:
    """Bring the profile's name and phones to the card's (the caller holds the profile's
    lock); returns the profile as it is now. A linked profile only when the connection's
    ``push_linked_profiles`` is on (the default)."""
    if not card_differs(card, profile):
        return profile
    ours = known.created_by_us if known is not None else store.created_by_us(login)
    if not ours and not from_options(client.options).push_linked_profiles:
        return profile
    client.update_profile(login, card["full_name"], list(card["phones"]))
    return {**profile, "full_name": card["full_name"], "phones": list(card["phones"])}


def _tidy(client: IntercomClient, login: str) -> None:
    """After an address left a profile: delete the profile once it has no address (a linked
    one kept when the connection's ``keep_linked_profiles`` is on: then forgotten once no
    account of ours may be on it)."""
    profile = client.get_profile(login)
    if profile is None:
        store.forget_profile(login)
        return
    if not profile.get("addresses"):
        if store.created_by_us(login) or not from_options(client.options).keep_linked_profiles:
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
