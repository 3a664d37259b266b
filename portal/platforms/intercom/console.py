"""What staff ask of the intercom platform besides the sync: look a login up, check the
connection, check every known profile for drift; and the drift view the admin page draws
from what the last read showed (no network call from the web process).

The first three run in jobs (jobs/intercom.py); every platform call is written to the audit
log, like the reconcile's, and no transaction stays open during a call.
"""
from __future__ import annotations

from sqlalchemy import select

from ...billing import outbox
from ...extensions import db
from ...models import Account, IntercomAttachment, IntercomProfile
from .. import connections
from ..http import PlatformError, audit_calls, recording
from . import store, sync
from .client import IntercomClient
from .settings import from_options

ACTOR = "platform:intercom"


def _client() -> IntercomClient:
    connection = connections.load(sync.PLATFORM)
    db.session.rollback()
    if connection is None:
        raise PlatformError("no enabled connection for platform 'intercom' (Platforms → Connections)")
    return IntercomClient(connection)


def _audit(calls: list[dict], object_type: str = "intercom_profile", object_id=None) -> None:
    audit_calls(calls, ACTOR, object_type, object_id)


def lookup(login: str) -> dict:
    """The profile of this login as the platform has it now: ``{"found": False}`` or
    ``{"found": True, "login", "full_name", "phones", "addresses": [...]}``, each address
    with its level and the login of our account it belongs to, if any."""
    login = (login or "").strip()
    client = _client()
    with recording() as calls:
        try:
            profile = sync.lookup(client, login)
        finally:
            _audit(calls)
            db.session.commit()
    if profile is None:
        return {"found": False, "login": login}
    addresses = [{**a, "account_id": sync.account_key(a.get("account_id")) or a.get("account_id")}
                 for a in profile.get("addresses") or []]
    ids = [a["account_id"] for a in addresses if isinstance(a["account_id"], int)]
    ours = dict(db.session.execute(select(Account.id, Account.login).where(Account.id.in_(ids))).tuples().all()) \
        if ids else {}
    db.session.rollback()
    return {"found": True, "login": profile.get("login", login), "full_name": profile.get("full_name"),
            "phones": profile.get("phones") or [],
            "addresses": [{"account_id": a.get("account_id"), "account_login": ours.get(a.get("account_id")),
                           "house_id": a.get("house_id"), "flat": a.get("flat"),
                           "level": sync.level_of(a.get("access"))} for a in addresses]}


def check_connection() -> dict:
    """Is the platform reachable, and does it accept our key?"""
    try:
        client = _client()
    except PlatformError as e:
        return {"reachable": False, "token_ok": None, "error": str(e)}
    with recording() as calls:
        result = client.check()
    _audit(calls, object_type="platform_connection")
    db.session.commit()
    return result


def check_profiles(progress=None) -> dict:
    """Read every profile we know from the platform, keep what it shows, and queue a sync of
    every account whose address there is not what billing wants (or is missing, or sits on
    a profile it no longer belongs to). Returns counts."""
    client = _client()
    logins = sorted(set(db.session.scalars(select(IntercomProfile.login)))
                    | set(db.session.scalars(select(IntercomAttachment.login))))
    db.session.rollback()
    drifted: set[int] = set()
    checked = missing = 0
    for n, login in enumerate(logins, start=1):
        with recording() as calls:
            try:
                with sync.profile_lock(login):
                    profile = client.get_profile(login)
                    if profile is not None:
                        store.note_profile(login, created_by_us=None)
                        store.snapshot(login, profile)
                        for a in profile.get("addresses") or []:
                            aid = sync.account_key(a.get("account_id"))
                            if aid is not None and store.account_exists(aid):
                                store.attach(aid, login)  # so that its sync can take it off
            except PlatformError:
                profile = False  # not read: nothing concluded
        _audit(calls)
        if profile is None:
            missing += 1
            drifted.update(store.attached_accounts(login))
        elif profile:
            checked += 1
            drifted.update(_drift_of(login, profile))
        db.session.commit()
        if progress:
            progress(f"{n}/{len(logins)}")
    if drifted:
        outbox.notify(sorted(drifted), "intercom.drift")
    db.session.commit()
    return {"profiles": checked, "missing": missing, "drifted_accounts": len(drifted)}


def _drift_of(login: str, profile: dict) -> set[int]:
    """Accounts to sync: those whose address differs, and every account on a profile whose
    name or phones differ from the card where billing pushes them."""
    rows = view_profile(login, profile.get("addresses") or [])
    drifted = {r["account_id"] for r in rows if r["drift"] and r["account"] is not None}
    card = card_drift(login, profile, rows)
    if card is not None and card["pushed"]:
        drifted |= {r["account_id"] for r in rows if r["account"] is not None and r["drift"] is None}
    return drifted


def card_drift(login: str, profile, rows: list[dict], options: dict | None = None) -> dict | None:
    """The subscriber card (name, phones) of the first of our accounts that belongs on this
    profile, when the profile shows other values; ``pushed``: whether the next sync brings
    the profile to it (our profile, or ``push_linked_profiles`` on). ``profile``: a dict or
    our stored row; ``options``: the connection's (read here when not given)."""
    get = profile.get if isinstance(profile, dict) else lambda k: getattr(profile, k)
    ours = [r for r in rows if r["account"] is not None and r["billing_level"] not in (None, "absent")
            and r["drift"] != "not_ours"]
    if not ours:
        return None
    subscriber = ours[0]["account"].contract.subscriber
    card = {"full_name": subscriber.full_name, "phones": list(subscriber.phones or [])}
    if not sync.card_differs(card, {"full_name": get("full_name"), "phones": get("phones")}):
        return None
    if options is None:
        connection = connections.load(sync.PLATFORM)
        options = connection.options if connection else {}
    created = profile.get("created_by_us") if isinstance(profile, dict) else profile.created_by_us
    push = bool(created if created is not None else store.created_by_us(login)) \
        or from_options(options).push_linked_profiles
    return {**card, "pushed": push}


# -- the drift view (from the last read) -------------------------------------------------------------

def billing_view(account: Account) -> dict:
    """What billing wants for this account on the intercom platform (level, login, why)."""
    if not outbox.on_platform(account.id, sync.PLATFORM):
        return {"login": sync.isvyaz_login(account), "level": "absent", "why": ["not_on_platform"],
                "address": {"house_id": account.house or "", "flat": account.flat or ""}}
    return sync.desired_state(account)


def view_profile(login: str, addresses: list[dict]) -> list[dict]:
    """One row per address the platform showed, plus one per account of ours that should be
    there and was not; each with its drift: None, ``access``, ``address``, ``not_ours``
    (an account of ours that belongs elsewhere), ``unknown`` (no account of ours), ``missing``."""
    attached = set(db.session.scalars(select(IntercomAttachment.account_id).where(IntercomAttachment.login == login)))
    addresses = [{**a, "account_id": sync.account_key(a.get("account_id")) or a.get("account_id")} for a in addresses]
    ids = {a["account_id"] for a in addresses if isinstance(a["account_id"], int)} | attached
    accounts = {a.id: a for a in db.session.scalars(select(Account).where(Account.id.in_(ids)))} if ids else {}
    want = {i: billing_view(a) for i, a in accounts.items()}
    rows, seen = [], set()
    for a in addresses:
        aid = a.get("account_id")
        account = accounts.get(aid)
        seen.add(aid)
        have_level = sync.level_of(a.get("access"))
        w = want.get(aid)
        if account is None:
            drift = "unknown"
        elif w["login"] != login or w["level"] == "absent":
            drift = "not_ours"
        elif w["level"] != have_level:
            drift = "access"
        elif (w["address"]["house_id"], w["address"]["flat"]) != (a.get("house_id"), a.get("flat")):
            drift = "address"
        else:
            drift = None
        rows.append({"account_id": aid, "account": account, "house_id": a.get("house_id"), "flat": a.get("flat"),
                     "platform_level": have_level, "billing_level": w["level"] if w else None,
                     "why": w["why"] if w else [], "drift": drift})
    for aid, w in want.items():
        if aid not in seen and w["login"] == login and w["level"] != "absent":
            rows.append({"account_id": aid, "account": accounts[aid], "house_id": w["address"]["house_id"],
                         "flat": w["address"]["flat"], "platform_level": "absent", "billing_level": w["level"],
                         "why": w["why"], "drift": "missing"})
    return rows
