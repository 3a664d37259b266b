"""Billing state -> «Смотрёшка» (the one place that decides what the platform must show).

Desired state of an account that is on the platform (its agent's platform, or a live TV
service bound to it):

* the platform account exists, named ``<login_prefix><login>``, with the subscriber's email
  (lowercased) or, without one, the email template (notes 1.5); ``created:false`` on create
  means it is ours already; a disabled account is archived (``DELETE``);
* its enabled subscriptions equal the external ids of the account's live TV services while
  the account is active; a block of any reason disables them (block mode ``unsubscribe`` or
  ``both``) and, when account-state is switched on, pushes the suspended state; unblocking
  restores them; an ended or expired service is not wanted any more;
* basics are disabled before anything is enabled, so the platform never sees two basics.

``reconcile`` reads the platform, applies the difference and returns what the platform has
afterwards, what it read and what it changed (the account page shows them). An ordinary change
whose desired state equals the last successful pass's is not sent at all (``skip_unchanged``:
a change of the internet tariff that keeps the TV services costs nothing); "sync now" and the
scheduled re-sync always read the platform.

Changes made on the platform (by the operator's manager in its admin, by the subscriber in its
apps) are told from billing's by what billing wanted at the last successful pass, which the
platform then confirmed (``platform_side``):

* switched off there: billing wanted it then and still does, the platform no longer has it.
  The connection option ``platform_changes`` says what the scheduled re-sync does: ``accept``
  (default) ends the billing service, refunded as the charging rules say
  (``apply_platform_changes``); ``revert`` enables it again; ``report`` leaves it and lists
  it in the drift report;
* switched on there: the platform has it, billing neither wants it nor wanted it then (a
  purchase in the app reaches billing first, through upsale commit). ``revert`` disables it;
  ``accept`` and ``report`` leave it and list it, since billing does not start charging on its
  own for what nobody bought through it: staff accept it into billing from the drift report;
* staff's "sync now" pushes billing's state whatever the option; a pass for a billing change
  applies only what billing changed and lists what the platform changed (as ``report``), which
  the next scheduled re-sync or staff settle.
"""
from __future__ import annotations

from sqlalchemy import delete

from ...billing import accounts as acc
from ...billing import clock
from ...billing.blocking import top_up_to_unblock
from ...extensions import db
from ...models import Account, SmotreshkaDrift, to_minor
from ..http import PlatformError
from ..registry import SyncPass
from .client import SmotreshkaClient
from .settings import load as load_settings

NAME = "smotreshka"


def tv_services(account, today=None) -> list:
    """The account's live TV services on this platform (active or suspended, not ended, not
    expired)."""
    today = today or clock.today()
    return [s for s in account.services
            if s.service.platform == NAME and s.state != "ended" and (s.ends_on is None or s.ends_on >= today)]


def wanted_subscriptions(account, settings, today=None) -> list[str]:
    if account.status == "blocked" and not settings.unsubscribe_on_block:
        live = [s for s in tv_services(account, today) if s.state == "active"]
    elif account.status != "active":
        return []
    else:
        live = [s for s in tv_services(account, today) if s.state == "active"]
    return sorted({s.service.external_id for s in live})


def basic_ids(account) -> list[str]:
    return sorted({s.service.external_id for s in account.services
                   if s.service.platform == NAME and s.service.iptv_kind == "basic"})


def account_state(account) -> dict:
    """The account-state v3 body (without its timestamp), notes 1.11."""
    contract = account.contract
    kopecks = to_minor(contract.balance)
    if account.status == "active":
        status = "active"
    elif account.status == "blocked" and "balance" in account.reasons:
        status = "suspended_no_funds"
    elif account.status == "blocked" and account.reasons == ["subscriber"]:
        status = "suspended_manually"
    else:
        status = "other"
    refill = to_minor(top_up_to_unblock(contract) or 0)  # what lifts the balance block (billing's rule)
    state = {"balance": kopecks, "status": status, "tvSuspended": status != "active",
             "recommendedRefill": refill}
    if account.status_changed_on:
        from datetime import datetime
        from datetime import time as dtime

        changed = datetime.combine(account.status_changed_on, dtime(0), tzinfo=clock.tz())
        state["lastChangeTimestamp"] = int(changed.timestamp() * 1000)
    return state


def email_for(account, settings) -> str:
    email = (account.contract.subscriber.email or "").strip().lower()
    if email:
        return email
    return settings.email_template.format(account_id=account.id, login=account.login).lower()


def desired_state(account) -> dict:
    settings = load_settings()
    return {
        "username": settings.username(account.login),
        "email": email_for(account, settings),
        "present": account.status != "disabled",
        "subscriptions": wanted_subscriptions(account, settings) if account.status != "disabled" else [],
        "basics": basic_ids(account),
        "account_state": account_state(account) if settings.account_state else None,
        "info": {"billing_account_id": str(account.id), "login": account.login,
                 "contract": account.contract.number},
    }


def _username(client: SmotreshkaClient, login: str) -> str:
    return client.settings.username(login)


def find_id(client: SmotreshkaClient, username: str) -> str | None:
    """A platform id by username: in username mode the name is the id; otherwise page the list."""
    if client.settings.id_mode == "username":
        found = client.account(username)
        return str(found["id"]) if found else None
    for item in client.all_accounts():
        if item.get("username") == username:
            return str(item["id"])
    return None


def platform_side(wanted: set[str], have: set[str], last: dict | None) -> tuple[set[str], set[str]]:
    """(switched off on the platform, switched on there): the one rule telling the platform's
    changes from billing's, against ``last``, the actual state of the last successful pass
    (what billing wanted then, which the platform confirmed but for the changes listed then).
    Never synced, or archived then: nothing is the platform's doing, billing's state goes."""
    if not last or last.get("archived"):
        return set(), set()
    before = set(last.get("billing", last.get("subscriptions")) or [])
    return (before & wanted) - have, have - wanted - before


def reconcile(client: SmotreshkaClient, login: str, desired: dict | None, sync: SyncPass | None = None) -> dict | None:
    sync = sync or SyncPass()
    last = sync.last or {}
    if desired is None or not desired["present"]:
        return _archive(client, desired["username"] if desired else _username(client, login), last.get("id"))
    username, wanted = desired["username"], set(desired["subscriptions"])
    pid = last.get("id")
    found = client.account(client._ref(pid, username)) if pid or client.settings.id_mode == "username" else None
    if found is None:  # new, archived (403: re-POST restores it) or never linked: create-or-get
        pid = client.create(username, desired["email"], sorted(wanted), desired["info"])
    else:
        pid = str(found.get("id") or pid)
    ref = client._ref(pid, username)
    have = client.subscriptions(ref)
    off, on = platform_side(wanted, have, sync.last)
    rule = {"manual": "revert", "scheduled": client.settings.platform_changes}.get(sync.mode, "report")
    target = wanted if rule == "revert" else (wanted - off) | on  # what the platform keeps is left there
    basics = set(desired.get("basics") or [])
    disable, enable = have - target, target - have
    for sid in sorted(disable, key=lambda s: s not in basics):  # basics go first
        client.toggle(ref, sid, False)
    for sid in sorted(enable, key=lambda s: s not in basics):
        client.toggle(ref, sid, True)
    after = client.subscriptions(ref) if disable or enable else have
    if after != target:
        raise PlatformError(f"the platform kept {sorted(after)} where billing wants {sorted(target)}")
    if desired.get("account_state") is not None:
        client.account_state(ref, desired["account_state"])
    changes = [{"id": sid, "change": "switched_off", "rule": rule} for sid in sorted(off)] + \
              [{"id": sid, "change": "switched_on", "rule": rule} for sid in sorted(on)]
    return {"id": pid, "username": username, "subscriptions": sorted(after), "archived": False,
            "billing": sorted(wanted), "read": sorted(have), "enabled": sorted(enable), "disabled": sorted(disable),
            "platform_changes": changes, "mode": sync.mode}


def apply_platform_changes(account_id: int, actual: dict, sync: SyncPass) -> None:
    """After a pass, in the job's recording transaction: end in billing each service the
    platform switched off under ``accept`` (billing refunds it as its charging rules say), and
    list what the pass left on the platform (not what it reverted) in the drift report; a successful pass leaves no
    other difference, so its list replaces the account's rows."""
    changes = actual.get("platform_changes") or []
    accepted = {c["id"] for c in changes if c["change"] == "switched_off" and c["rule"] == "accept"}
    if accepted:
        account = db.session.get(Account, account_id)
        acc.lock_account(account)  # (re-reads its services: end what is live now, once)
        for service in tv_services(account):
            if service.service.external_id in accepted and service.state == "active":
                acc.end_service(service, actor=f"platform:{NAME}")
    db.session.execute(delete(SmotreshkaDrift).where(SmotreshkaDrift.account_id == account_id))
    db.session.add_all([SmotreshkaDrift(
        account_id=account_id, kind="missing_on_platform" if c["change"] == "switched_off" else "extra_on_platform",
        username=actual.get("username"), platform_id=actual.get("id"), external_id=c["id"],
        billing=actual.get("billing"), platform=actual.get("subscriptions"))
        for c in changes if c["rule"] != "revert" and c["id"] not in accepted])  # what the pass left in place


def _archive(client: SmotreshkaClient, username: str, pid: str | None) -> dict:
    pid = pid or find_id(client, username)
    if pid is None:
        return {"id": None, "username": username, "subscriptions": [], "archived": True}
    ref = client._ref(pid, username)
    if client.account(ref) is not None:
        for sid in sorted(client.subscriptions(ref)):
            client.toggle(ref, sid, False)
        client.archive(ref)
    return {"id": pid, "username": username, "subscriptions": [], "archived": True}
