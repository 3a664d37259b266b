"""Billing -> Stalker: the one rule for what a billing account must be in Stalker, and the
reconcile that reads the account's Stalker user and applies the difference.

Desired account (``accounts`` fields):

* present while the account is active or blocked; absent when inactive or disabled (or no
  longer on a Stalker agent): then the bound user is deleted;
* ``login``: the bound user's login; for an account without one, the login staff chose
  ("change login"), the Stalker login kept by "+", else the billing login;
* ``password``: the account's password, sent only when it differs from the one last pushed
  (the binding keeps an HMAC of it): Stalker's api_access.log records request bodies;
* ``full_name``, ``phone``: the subscriber card's name and first phone;
* ``account_number``: the TV ID (``stalker_tv_ids``, else the account id);
* ``tariff_plan``: the Stalker plan of the tariff (catalog.plan_of), checked against
  ``GET tariffs`` first: Stalker gives an unknown plan the default one silently;
* ``status``: 1 when active, 0 when blocked; ``stb_mac``: the first STB registered on the
  account; ``account_balance``: the contract balance;
* ``subscribed``: the packages of the account's live services (catalog.package_of); only
  the optional packages of the plan (catalog.optional_packages) are sent.

Identity (binding.py): every lookup, update, block and delete acts on the user the account is
bound to, addressed by its login (``users/<login>``), else its MAC, else its account number
when no other user shares it. Without a binding the account's user is created; a login or MAC
Stalker says is in use belongs to a user billing is not bound to: ``Conflict`` (state
``conflict``, shown on the account page with "link" and "change login"), nothing written.

Fields are independent: only what differs is sent (a block is ``status`` alone, with the
balance when it changed). A field that cannot be sent (a tariff with no Stalker plan) is left
out, the rest is sent, and the pass then fails naming that field. A package the plan does not
allow is listed in the state as ``not_in_plan`` and not retried.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from ...billing.crypto import decrypt, encrypt
from ...extensions import db
from ..http import Conflict, PlatformError
from . import binding, catalog
from .client import LoginInUse, MacInUse, StalkerClient

FIELDS = ("login", "full_name", "phone", "account_number", "tariff_plan", "status", "stb_mac", "account_balance")


def tv_id(account) -> int:
    """The account's TV ID (its Stalker account_number)."""
    from ...models import StalkerTvId

    row = db.session.get(StalkerTvId, account.id)
    return row.tv_id if row else account.id


def _login(account, tv_row) -> str:
    from ...models import StalkerBinding

    bound = db.session.get(StalkerBinding, account.id)
    if bound is not None and bound.state != "unbound" and bound.login:
        return bound.login
    if bound is not None and bound.new_login:
        return bound.new_login
    return tv_row.login if tv_row is not None and tv_row.login else account.login


def desired_state(account) -> dict | None:
    from ...models import StalkerStb, StalkerTvId

    if account.status not in ("active", "blocked"):
        return None
    row = db.session.get(StalkerTvId, account.id)
    number = row.tv_id if row else account.id
    if row is None:
        other = db.session.scalar(select(StalkerTvId.account_id).where(StalkerTvId.tv_id == account.id))
        if other is not None:
            raise PlatformError(f"TV ID {account.id} belongs to account {other}: give this account its own TV ID")
    stb = db.session.scalar(select(StalkerStb).where(StalkerStb.account_id == account.id).order_by(StalkerStb.id))
    subscriber = account.contract.subscriber
    password = decrypt(account.password_enc) if account.password_enc else None
    return {
        "login": _login(account, row),
        "full_name": subscriber.full_name,
        "phone": (subscriber.phones or [""])[0],
        "account_number": str(number),
        "tariff_plan": catalog.plan_of(account.tariff_id),
        "tariff": account.tariff.name if account.tariff is not None else None,  # named in a plan problem
        "status": 1 if account.status == "active" else 0,
        "stb_mac": stb.mac if stb else "",
        "account_balance": f"{Decimal(account.contract.balance):.2f}",
        "subscribed": sorted({p for p in (catalog.package_of(s.service) for s in account.services
                                          if s.state == "active" and s.service is not None) if p}),
        # encrypted: the sync state is shown to staff; decrypted only to be sent
        "password_enc": encrypt(password) if password else None,
    }


def _public(row: dict | None) -> dict | None:
    """Stalker's account row as the sync state keeps it."""
    if row is None:
        return None
    return {k: row.get(k) for k in (*FIELDS, "subscribed")}


def _text(value) -> str:
    return str(value if value is not None else "")


# -- finding and addressing the bound user ---------------------------------------------------------

def _login_addressable(login) -> bool:
    """``users/<login>`` reaches exactly that user (a login with ':' of 12+ characters would be
    read as a MAC, ',' splits identifiers)."""
    return bool(login) and not any(c in str(login) for c in ":,/")


def _is_bound(row: dict, bound: dict) -> bool:
    if bound.get("login"):
        return row.get("login") == bound["login"]
    if bound.get("mac"):
        return row.get("stb_mac") == bound["mac"]
    return _text(row.get("account_number")) == _text(bound.get("account_number"))


def _only_user_of(client: StalkerClient, number) -> dict | None:
    """The one user of an account number; None when it has none or several (ls is not unique)."""
    rows = client.account(number) if _text(number) else []
    return rows[0] if len(rows) == 1 else None


def find_bound(client: StalkerClient, bound: dict | None) -> dict | None:
    """The Stalker user the account is bound to, as Stalker shows it now (None: not there). A
    create whose answer was lost counts as ours when a user has its login and account number."""
    if bound is None or bound["state"] == "unbound":
        return None
    if bound["state"] == "creating":
        row = client.user(bound["login"]) if _login_addressable(bound["login"]) else None
        return row if row is not None and _text(row.get("account_number")) == _text(bound["account_number"]) else None
    if _login_addressable(bound.get("login")):
        row = client.user(bound["login"])
        if row is not None:
            return row
    if bound.get("mac"):
        row = next((r for r in client.account(bound["mac"]) if _is_bound(r, bound)), None)
        if row is not None:
            return row
    if not bound.get("login") and not bound.get("mac"):
        row = _only_user_of(client, bound.get("account_number"))
        if row is not None and _is_bound(row, bound):
            return row
    return None


def address(client: StalkerClient, user: dict) -> tuple[str, str]:
    """How to write onto this user alone: its login, else its MAC, else its account number when
    no other user shares it (a PUT on a shared number would write onto all of them)."""
    if _login_addressable(user.get("login")):
        return "users", user["login"]
    if user.get("stb_mac"):
        return "accounts", user["stb_mac"]
    if _only_user_of(client, user.get("account_number")) is not None:
        return "accounts", _text(user.get("account_number"))
    raise Conflict(f"Stalker user of account number {user.get('account_number')} has no login or MAC and shares "
                   "its account number with other users: billing cannot address it alone")


def _reread(client: StalkerClient, user: dict, changed: dict) -> dict:
    """The user after a change, found by what it is now."""
    login = changed.get("login", user.get("login"))
    if _login_addressable(login):
        row = client.user(login)
    else:
        mac = changed.get("stb_mac", user.get("stb_mac"))
        row = next(iter(client.account(mac)), None) if mac else \
            _only_user_of(client, changed.get("account_number", user.get("account_number")))
    if row is None:
        raise PlatformError(f"Stalker does not show user {login or user.get('account_number')} after the change")
    return row


def _conflict(account_id: int, reason: str, user: dict | None, what: str) -> Conflict:
    binding.record_conflict(account_id, reason, user)
    who = f"«{user.get('login')}» (account number {user.get('account_number') or '—'})" if user else "unknown"
    return Conflict(f"{reason}: {what} belongs to Stalker user {who}, which is not bound to this account. "
                    "Link it on the account page if it is the same subscriber, or change the login")


# -- the reconcile ------------------------------------------------------------------------------------

def reconcile(client: StalkerClient, login: str, desired: dict | None, sync=None) -> dict | None:
    """Every pass reads the bound user (whatever ``sync`` says) and applies the difference."""
    account_id, bound = binding.snapshot(login)
    if desired is None:
        user = find_bound(client, bound)
        if user is not None:
            client.delete_at(address(client, user))
        if bound is not None:
            binding.forget(account_id)
        return None

    problems, conflicts = [], []
    plan = desired.get("tariff_plan")
    plans = {_text(p.get("external_id")) for p in client.tariffs()}
    wanted = {k: desired[k] for k in FIELDS}
    if plan is None or plan not in plans:
        wanted.pop("tariff_plan")
        tariff = f"tariff «{desired.get('tariff')}»" if desired.get("tariff") else "the account has no tariff"
        problems.append(f"tariff_plan: {tariff}: Stalker has no plan "
                        f"{'with external_id ' + plan if plan else 'for it'} (not sent: Stalker would give the "
                        "default plan silently)")
    password = decrypt(desired["password_enc"]) if desired.get("password_enc") else None
    pw_digest = binding.digest(account_id, password) if password else None

    user = find_bound(client, bound)
    if user is None:
        if problems:
            raise PlatformError(problems[0] + "; the Stalker user is created once the plan is there")
        user = _create(client, account_id, wanted, password, pw_digest)
    else:
        user = _update(client, account_id, bound, user, wanted, password, pw_digest, conflicts)
    user, not_in_plan = _packages(client, user, desired["subscribed"])
    if conflicts:
        raise conflicts[0]
    if problems:
        raise PlatformError("; ".join(problems))
    return {**_public(user), "not_in_plan": not_in_plan}


def _create(client: StalkerClient, account_id: int, wanted: dict, password, pw_digest) -> dict:
    binding.ensure_free(account_id, wanted["login"])
    # look first: a create Stalker refuses would still put the password into its api_access.log
    holder = client.user(wanted["login"])
    if holder is not None:
        raise _conflict(account_id, "Login already in use", holder, f"login {wanted['login']}")
    holder = next(iter(client.account(wanted["stb_mac"])), None) if wanted.get("stb_mac") else None
    if holder is not None:
        raise _conflict(account_id, "MAC address already in use", holder, f"STB {wanted['stb_mac']}")
    binding.record_creating(account_id, wanted["login"], wanted["account_number"])
    try:  # someone may have taken the login or the MAC since
        client.create_account({**wanted, "password": password})
    except LoginInUse as e:
        raise _conflict(account_id, str(e), client.user(wanted["login"]), f"login {wanted['login']}") from None
    except MacInUse as e:
        holder = next(iter(client.account(wanted["stb_mac"])), None)
        raise _conflict(account_id, str(e), holder, f"STB {wanted['stb_mac']}") from None
    user = client.user(wanted["login"])
    if user is None:
        raise PlatformError(f"Stalker does not show user {wanted['login']} after creating it")
    binding.confirm(account_id, user, how="created", password_digest=pw_digest)
    return user


def _update(client: StalkerClient, account_id: int, bound: dict, user: dict, wanted: dict, password, pw_digest,
            conflicts: list) -> dict:
    changed = {k: v for k, v in wanted.items() if _text(user.get(k)) != _text(v)}
    if changed.get("stb_mac"):
        # Stalker does not check a MAC on PUT: two users would share the STB
        holder = next((r for r in client.account(changed["stb_mac"]) if not _is_bound(r, bound)), None)
        if holder is not None:
            changed.pop("stb_mac")
            conflicts.append(_conflict(account_id, "MAC address already in use", holder,
                                       f"STB {wanted['stb_mac']}"))
    send_password = bool(password) and pw_digest != bound.get("password_digest")
    body = {**changed, "password": password} if send_password else dict(changed)
    if body:
        where = address(client, user)
        try:
            client.update_at(where, body)
        except LoginInUse as e:
            conflicts.append(_conflict(account_id, str(e), client.user(changed["login"]), f"login {changed['login']}"))
            changed.pop("login", None)
            body.pop("login", None)
            if body:
                client.update_at(where, body)
        user = _reread(client, user, changed)
    binding.confirm(account_id, user, password_digest=pw_digest if send_password else binding.KEEP,
                    clear_conflict=not conflicts)
    return user


def _packages(client: StalkerClient, user: dict, wanted: list[str]) -> tuple[dict, list[str]]:
    """Switch the optional packages of the user's plan to billing's; returns the user as read
    back and the packages billing wants that the plan does not allow (shown, not retried)."""
    allowed = catalog.optional_packages(_text(user.get("tariff_plan")) or None)
    have, want = set(user.get("subscribed") or []), set(wanted)
    not_in_plan = want - allowed if allowed is not None else set()
    add = (want - not_in_plan) - have
    remove = have - want
    if add or remove:
        ident = user.get("stb_mac") or (_text(user.get("account_number"))
                                        if _only_user_of(client, user.get("account_number")) else None)
        if not ident:  # account_subscription takes a MAC or an account number, not a login
            raise Conflict(f"Stalker user {user.get('login')} has no MAC and shares its account number: its "
                           "packages cannot be changed alone")
        client.change_subscription(ident, sorted(add), sorted(remove))  # its true/false says little
        user = _reread(client, user, {})
        now = set(user.get("subscribed") or [])
        not_in_plan |= add - now  # refused: not optional in the user's plan
        if remove & now:
            raise PlatformError(f"Stalker kept {', '.join(sorted(remove & now))} subscribed")
    return user, sorted(not_in_plan)
