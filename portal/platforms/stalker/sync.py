"""Billing -> Stalker: the one rule for what a billing account must be in Stalker, and the
reconcile that reads Stalker's account and applies the difference.

Desired account (``accounts`` resource, identifier = the account's TV ID):

* present while the account is active or blocked; absent when inactive or disabled (or no
  longer on a Stalker agent): then it is deleted (``Account not found`` counts as done);
* ``login``: the billing login (or the Stalker login kept for an account added from Stalker
  under another billing login); ``password``: the account's password, sent on create and with
  every change (Stalker never returns it, so a password change alone goes with the next one);
* ``full_name``, ``phone``: the subscriber card's name and first phone;
* ``account_number``: the TV ID (``stalker_tv_ids``, else the account id);
* ``tariff_plan``: the tariff id (= the Stalker plan's external_id). It is checked against
  ``GET tariffs`` first: Stalker gives an unknown plan the default one silently, so the sync
  state says "no such plan" instead of sending it;
* ``status``: 1 when active, 0 when blocked (a status change alone is sent alone, as a block);
* ``stb_mac``: the first STB registered on the account;
* ``account_balance``: the contract balance;
* ``subscribed``: external ids of the account's live services bound to Stalker packages.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from ...billing.crypto import decrypt, encrypt
from ...extensions import db
from ..http import PlatformError
from .client import LoginInUse, MacInUse, StalkerClient

FIELDS = ("login", "full_name", "phone", "account_number", "tariff_plan", "status", "stb_mac", "account_balance")


def tv_id(account) -> int:
    """The account's TV ID (its Stalker account_number)."""
    from ...models import StalkerTvId

    row = db.session.get(StalkerTvId, account.id)
    return row.tv_id if row else account.id


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
        "login": (row.login if row and row.login else account.login),
        "full_name": subscriber.full_name,
        "phone": (subscriber.phones or [""])[0],
        "account_number": str(number),
        "tariff_plan": str(account.tariff_id) if account.tariff_id is not None else None,
        "status": 1 if account.status == "active" else 0,
        "stb_mac": stb.mac if stb else "",
        "account_balance": f"{Decimal(account.contract.balance):.2f}",
        "subscribed": sorted({s.service.external_id for s in account.services
                              if s.state == "active" and s.service.platform == "stalker" and s.service.external_id}),
        # encrypted: the sync state is shown to staff; decrypted only to be sent
        "password_enc": encrypt(password) if password else None,
    }


def _public(row: dict | None) -> dict | None:
    """Stalker's account row as the sync state keeps it."""
    if row is None:
        return None
    return {k: row.get(k) for k in (*FIELDS, "subscribed")}


def _find(client: StalkerClient, desired: dict) -> dict | None:
    """The user of the account's TV ID: the one with its login, else the one with its STB (an
    account number may cover several users), else the first."""
    rows = client.account(desired["account_number"])
    return next((r for r in rows if r.get("login") == desired["login"]),
                next((r for r in rows if desired["stb_mac"] and r.get("stb_mac") == desired["stb_mac"]),
                     rows[0] if rows else None))


def _ident(row: dict) -> str:
    """Address one user: its MAC when it has one (an account number may cover several)."""
    return row.get("stb_mac") or row.get("account_number")


def reconcile(client: StalkerClient, login: str, desired: dict | None, sync=None) -> dict | None:
    """Every pass reads Stalker's account (whatever ``sync`` says) and applies the difference."""
    if desired is None:
        row = client.user(login)
        if row is not None:
            client.delete_account(_ident(row))
        return None

    plan = desired.get("tariff_plan")
    if plan is None:
        raise PlatformError("the account has no tariff: Stalker would give it its default plan")
    plans = {str(p.get("external_id")) for p in client.tariffs()}
    if plan not in plans:
        raise PlatformError(f"Stalker has no tariff plan with external_id {plan}: create it in Stalker "
                            "(not sent: Stalker would give the account its default plan silently)")
    password = decrypt(desired["password_enc"]) if desired.get("password_enc") else None
    wanted = {k: desired[k] for k in FIELDS}
    actual = _find(client, desired)
    if actual is None:
        try:
            client.create_account({**wanted, "password": password})
        except LoginInUse:
            # the login is in Stalker under another account number (an account added from
            # Stalker whose number was not a usable TV ID): renumber that user
            row = client.user(desired["login"])
            if row is None:
                raise
            client.update_account(_ident(row), {**wanted, "password": password})
        except MacInUse:
            # the STB is a Stalker user without a login (added from Stalker by "+" under a
            # generated login, its number not a usable TV ID): that user becomes this account
            row = next((r for r in client.account(wanted["stb_mac"]) if not r.get("login")), None)
            if row is None:
                raise
            client.update_account(wanted["stb_mac"], {**wanted, "password": password})
    else:
        changed = {k: v for k, v in wanted.items() if str(actual.get(k) if actual.get(k) is not None else "")
                   != str(v if v is not None else "")}
        if changed == {"status": wanted["status"]} or not changed:
            if changed:
                client.update_account(_ident(actual), changed)  # a block or an unblock: the status alone
        else:
            if "stb_mac" not in changed:
                wanted.pop("stb_mac")  # setting stb_mac makes the STB log in again: only when it changes
            client.update_account(_ident(actual), {**wanted, "password": password})
    after = _find(client, desired)
    if after is None:
        raise PlatformError(f"Stalker does not show account {desired['account_number']} after the change")
    if sorted(after.get("subscribed") or []) != desired["subscribed"]:
        if desired["subscribed"]:
            client.set_account_subscription(_ident(after), desired["subscribed"])
        else:
            client.clear_account_subscription(_ident(after))
        after = _find(client, desired) or after
        refused = sorted(set(desired["subscribed"]) - set(after.get("subscribed") or []))
        if refused:
            raise PlatformError(f"Stalker did not subscribe the account to {', '.join(refused)}: "
                                f"not optional packages of plan {plan}")
    return _public(after)
