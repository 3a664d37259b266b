"""The Stalker user each billing account is bound to (issue 13), and staff's ways to bind one.

An account is bound to the Stalker user billing created for it, imported with "+" or that staff
linked to it (``StalkerBinding``: Stalker's login, account number and MAC as last confirmed).
The sync (sync.py) looks up, updates, blocks and deletes that user only; a login or MAC held
by any other user is a conflict shown on the account page, never written onto.

Staff (or "+") bind in their own transaction (``bind``, ``link``, ``change_login``: the caller
commits). The sync records what Stalker confirmed with ``record_*``/``confirm``/``forget``,
each a short transaction of its own between two calls to Stalker, so that a binding survives a
pass that fails later on (no transaction stays open during a network call). No Flask here.
"""
from __future__ import annotations

import hashlib
import hmac

from flask import current_app
from sqlalchemy import func, select

from ...billing import audit
from ...billing.accounts import LOGIN_RE
from ...billing.errors import BillingError
from ...extensions import db
from ...models import Account, StalkerBinding, StalkerStb, utcnow
from ..http import Conflict

USER_FIELDS = ("login", "account_number", "stb_mac", "full_name", "status", "tariff_plan")
KEEP = object()


def get(account_id: int) -> StalkerBinding | None:
    return db.session.get(StalkerBinding, account_id)


def _row(account_id: int) -> StalkerBinding:
    return db.session.get(StalkerBinding, account_id) or StalkerBinding(account_id=account_id, state="unbound",
                                                                         how="created")


def _other_holder(account_id: int, login: str | None) -> Account | None:
    """The other account bound (or being created) with this Stalker login, if any."""
    if not login:
        return None
    return db.session.scalar(select(Account).join(StalkerBinding, StalkerBinding.account_id == Account.id).where(
        StalkerBinding.login == login, StalkerBinding.account_id != account_id))


def bind(account_id: int, *, login: str | None = None, account_number: str | None = None, mac: str | None = None,
         how: str = "imported") -> StalkerBinding:
    """Bind the account to this Stalker user (its login, account number and MAC as Stalker
    shows them). "+" calls it for the user it imports, staff's "link" for the user they
    confirmed. The password is pushed at the next pass. The caller commits."""
    login, account_number, mac = (login or None), (str(account_number) if account_number else None), (mac or None)
    if not (login or account_number or mac):
        raise BillingError({"login": "the Stalker user has no login, account number or MAC to find it by"})
    other = _other_holder(account_id, login)
    if other is not None:
        raise BillingError({"login": f"Stalker user {login} is bound to account {other.login}"})
    row = _row(account_id)
    row.state, row.login, row.account_number, row.mac, row.how = "bound", login, account_number, mac, how
    row.new_login, row.conflict, row.password_digest = None, None, None
    db.session.add(row)
    db.session.flush()
    return row


def digest(account_id: int, password: str) -> str:
    """What the binding keeps of the last pushed password: an HMAC keyed with SECRET_KEY (and
    the account, so that equal passwords give different digests), never the password."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"{account_id}:{password}".encode(), hashlib.sha256).hexdigest()


# -- for the sync: what it reads before calling Stalker, and what Stalker confirmed -------------

def snapshot(login: str) -> tuple[int | None, dict | None]:
    """The account with this billing login, and its binding as a plain dict (None: none). Ends
    the read, so that no transaction stays open during the calls that follow."""
    try:
        account_id = db.session.scalar(select(Account.id).where(Account.login == login))
        row = db.session.get(StalkerBinding, account_id) if account_id is not None else None
        data = None if row is None else {k: getattr(row, k) for k in (
            "state", "login", "account_number", "mac", "how", "new_login", "password_digest", "conflict")}
        return account_id, data
    finally:
        db.session.rollback()


def _save(account_id: int, change) -> None:
    try:
        row = _row(account_id)
        change(row)
        db.session.add(row)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def ensure_free(account_id: int, login: str) -> None:
    """Before creating a user with this login: a login another billing account is bound to (e.g.
    one "+" imported as ``<login>-tv``) is that account's user, a conflict before any call."""
    other = _other_holder(account_id, login)
    other_login = other.login if other is not None else None
    db.session.rollback()
    if other_login is not None:
        record_conflict(account_id, "Login already in use", None)
        raise Conflict(f"Login already in use: Stalker user «{login}» is bound to billing account {other_login}. "
                       "Change the login of this account's Stalker user")


def record_creating(account_id: int, login: str, account_number: str) -> None:
    """A create is about to be sent for this login: if its answer is lost, the next pass finds
    the user with this login and account number and takes it as ours."""
    def change(row):
        row.state, row.login, row.account_number, row.mac, row.how = "creating", login, account_number, None, "created"
    _save(account_id, change)


def record_conflict(account_id: int, reason: str, user: dict | None) -> None:
    """Stalker refused (``reason``: its error text) because of a user billing is not bound to:
    kept for the account page, with that user's fields (None: Stalker did not show it)."""
    shown = {k: (user or {}).get(k) for k in USER_FIELDS} if user else None

    def change(row):
        if row.state == "creating":
            row.state, row.login, row.account_number = "unbound", None, None
        row.conflict = {"reason": reason, "user": shown, "at": utcnow().isoformat()}
    _save(account_id, change)


def confirm(account_id: int, user: dict, *, how: str | None = None, password_digest=KEEP,
            clear_conflict: bool = True) -> None:
    """Stalker showed the bound user so (after a create, a change, or a lookup). A conflict
    found in the same pass (a MAC or login a stranger has) stays shown."""
    def change(row):
        row.state, row.new_login = "bound", None
        if clear_conflict:
            row.conflict = None
        row.login = user.get("login") or None
        row.account_number = str(user.get("account_number") or "") or None
        row.mac = user.get("stb_mac") or None
        if how is not None:
            row.how = how
        if password_digest is not KEEP:
            row.password_digest = password_digest
    _save(account_id, change)


def forget(account_id: int) -> None:
    """The bound user is gone from Stalker (deleted by the sync, or by someone else)."""
    try:
        row = db.session.get(StalkerBinding, account_id)
        if row is not None:
            db.session.delete(row)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


# -- staff: the account page's conflict panel ------------------------------------------------------

def link(account_id: int, *, actor: str) -> StalkerBinding:
    """Staff confirm that the Stalker user of the account's conflict is this subscriber: bind
    it (billing's data is written onto it at the next pass), and register its STB on the
    account when billing has it nowhere else (else the sync would clear that user's MAC). The
    caller commits, then asks for a sync."""
    row = get(account_id)
    user = (row.conflict or {}).get("user") if row is not None else None
    if row is not None and row.state == "bound":
        raise BillingError({"conflict": "the account is bound to a Stalker user already"})
    if not user:
        raise BillingError({"conflict": "no Stalker user to link: sync the account first"})
    account = db.session.get(Account, account_id)
    bound = bind(account_id, login=user.get("login"), account_number=user.get("account_number"),
                 mac=user.get("stb_mac"), how="linked")
    mac = user.get("stb_mac")
    if mac and not db.session.scalar(select(func.count()).select_from(StalkerStb).where(StalkerStb.mac == mac)):
        db.session.add(StalkerStb(account_id=account_id, mac=mac))
    audit.record(actor, "stalker.link", account, f"bound to Stalker user {user.get('login') or mac}",
                 after={"stalker": user})
    return bound


def change_login(account_id: int, login: str, *, actor: str) -> StalkerBinding:
    """Staff choose another Stalker login for an account that has no Stalker user yet (its own
    login is a stranger's there): the next pass creates the user with it. The caller commits,
    then asks for a sync."""
    login = (login or "").strip()
    row = get(account_id)
    if row is not None and row.state == "bound":
        raise BillingError({"login": "the account is bound to a Stalker user already"})
    if not LOGIN_RE.match(login):
        raise BillingError({"login": "1-64 latin letters, digits, _ . @ -"})
    clash = db.session.scalar(select(Account.id).where(Account.login == login, Account.id != account_id)) or \
        _other_holder(account_id, login) or db.session.scalar(select(StalkerBinding.account_id).where(
            StalkerBinding.new_login == login, StalkerBinding.account_id != account_id))
    if clash:
        raise BillingError({"login": "already taken"})
    if row is not None and (row.conflict or {}).get("user") and (row.conflict["user"] or {}).get("login") == login:
        raise BillingError({"login": "that is the login Stalker has for another user"})
    row = row or StalkerBinding(account_id=account_id, state="unbound", how="created")
    row.state, row.login, row.account_number, row.new_login, row.conflict = "unbound", None, None, login, None
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "stalker.change_login", db.session.get(Account, account_id), f"Stalker login {login}",
                 after={"login": login})
    return row
