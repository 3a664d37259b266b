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
afterwards; when billing's wish is exactly what the last successful pass left there, it does
not call the platform (a change of the internet tariff that keeps the TV services costs
nothing); "sync now" and the scheduled re-sync always call it.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select

from ...billing import clock
from ...extensions import db
from ...models import SyncState
from ..http import PlatformError
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
    kopecks = int(contract.balance * 100)
    if account.status == "active":
        status = "active"
    elif account.status == "blocked" and "balance" in account.reasons:
        status = "suspended_no_funds"
    elif account.status == "blocked" and account.reasons == ["subscriber"]:
        status = "suspended_manually"
    else:
        status = "other"
    refill = max(0, -int((contract.balance + contract.credit_limit) * 100))
    state = {"balance": kopecks, "status": status, "tvSuspended": status != "active",
             "recommendedRefill": refill}
    if account.status_changed_on:
        from datetime import datetime, time as dtime

        changed = datetime.combine(account.status_changed_on, dtime(0), tzinfo=clock.tz())
        state["lastChangeTimestamp"] = int(changed.timestamp() * 1000)
    return state


def email_for(account, settings) -> str:
    email = (account.contract.subscriber.email or "").strip().lower()
    if email:
        return email
    return settings.email_template.format(account_id=account.id, login=account.login).lower()


_STORED = select(SyncState.actual).where(SyncState.account_id == bindparam("account_id"), SyncState.platform == NAME)


def stored_platform_id(account_id: int) -> str | None:
    actual = db.session.scalar(_STORED, {"account_id": account_id})
    return actual.get("id") if actual else None


def desired_state(account) -> dict:
    settings = load_settings()
    desired = {
        "username": settings.username(account.login),
        "email": email_for(account, settings),
        "present": account.status != "disabled",
        "platform_id": stored_platform_id(account.id),
        "subscriptions": wanted_subscriptions(account, settings) if account.status != "disabled" else [],
        "basics": basic_ids(account),
        "account_state": account_state(account) if settings.account_state else None,
        "info": {"billing_account_id": str(account.id), "login": account.login,
                 "contract": account.contract.number},
    }
    st = db.session.scalar(select(SyncState).filter_by(account_id=account.id, platform=NAME))
    if st is not None and st.state == "ok" and st.desired and st.actual and not st.actual.get("archived"):
        def core(d):
            return {k: v for k, v in d.items() if k not in ("unchanged", "platform_id")}

        if core(st.desired) == core(desired) and st.actual.get("id") and \
                sorted(st.actual.get("subscriptions") or []) == desired["subscriptions"]:
            desired["unchanged"] = True
    return desired


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


def reconcile(client: SmotreshkaClient, login: str, desired: dict | None) -> dict | None:
    if desired is None or not desired["present"]:
        return _archive(client, desired["username"] if desired else _username(client, login),
                        desired.get("platform_id") if desired else None)
    username, wanted = desired["username"], set(desired["subscriptions"])
    if desired.get("unchanged"):
        return {"id": desired["platform_id"], "username": username, "subscriptions": sorted(wanted),
                "archived": False, "checked": False}
    pid = desired.get("platform_id")
    found = client.account(client._ref(pid, username)) if pid or client.settings.id_mode == "username" else None
    if found is None:  # new, archived (403: re-POST restores it) or never linked: create-or-get
        pid = client.create(username, desired["email"], sorted(wanted), desired["info"])
    else:
        pid = str(found.get("id") or pid)
    ref = client._ref(pid, username)
    actual = client.subscriptions(ref)
    basics = set(desired.get("basics") or [])
    for sid in sorted(actual - wanted, key=lambda s: s not in basics):  # basics go first
        client.toggle(ref, sid, False)
    for sid in sorted(wanted - actual, key=lambda s: s not in basics):
        client.toggle(ref, sid, True)
    after = client.subscriptions(ref) if actual != wanted else actual
    if after != wanted:
        raise PlatformError(f"the platform kept {sorted(after)} where billing wants {sorted(wanted)}")
    if desired.get("account_state") is not None:
        client.account_state(ref, desired["account_state"])
    return {"id": pid, "username": username, "subscriptions": sorted(after), "archived": False, "checked": True}


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
