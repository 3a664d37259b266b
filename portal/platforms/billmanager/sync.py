"""Billing state -> the seller (through the foundation's outbox and reconcile).

An account is on this platform while it has a resold service (its assigned catalog service
has ``platform = "billmanager"``), so every block, unblock (the balance block included),
suspension, resumption and end of a service reaches ``reconcile`` here, with retries and the
dead state of the foundation. Orders and renewals move money and are separate jobs
(orders.py); this module only suspends, resumes and deletes, which are safe to repeat.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ...extensions import db
from ...models import BmHandler, BmService
from ..http import PlatformError
from .client import BillmgrError
from .handlers import client_for
from .orders import desired


def desired_state(account) -> dict:
    """Each ordered service of the account and the state it must have on the seller."""
    services = db.session.scalars(select(BmService).where(
        BmService.account_id == account.id, BmService.remote_id.is_not(None),
        BmService.state.in_(("ordered", "deleted"))).order_by(BmService.id))
    return {"services": [{"id": s.id, "handler_id": s.handler_id, "itemtype": s.tariff.itemtype,
                          "remote_id": s.remote_id, "state": desired(s)} for s in services]}


def _left_platform(login: str) -> dict:
    from ...models import Account

    account = db.session.scalar(select(Account).filter_by(login=login))
    doc = desired_state(account) if account is not None else {"services": []}
    db.session.rollback()
    return doc


class Fleet:
    """Clients of every enabled handler, built once per job (credentials read, then the
    transaction closed before any call)."""

    def __init__(self, connection=None):
        self.clients = {h.id: client_for(h) for h in db.session.scalars(select(BmHandler))}
        db.session.rollback()


def reconcile(fleet: Fleet, login: str, desired_doc: dict | None, sync=None) -> dict | None:
    """Read each service's status on the seller (every pass, whatever ``sync`` says) and
    suspend, resume or delete it as billing wants. The seller's refusals (not allowed, confirmation
    required) are raised with its message, so staff see them on the account and in the dead syncs."""
    if desired_doc is None:  # the account has left the platform: its services' ends still apply
        desired_doc = _left_platform(login)
    if not desired_doc["services"]:
        return None
    by_group = defaultdict(list)
    for s in desired_doc["services"]:
        by_group[(s["handler_id"], s["itemtype"])].append(s)
    actual, errors = {}, []
    for (handler_id, itemtype), services in by_group.items():
        client = fleet.clients.get(handler_id)
        if client is None:
            errors.append(f"handler {handler_id} is gone")
            continue
        rows = {str(r["id"]): r for r in client.list(itemtype)}
        for s in services:
            row = rows.get(s["remote_id"])
            status = int(row["item_status"]) if row and str(row.get("item_status", "")).isdigit() else 4
            want = s["state"]
            action = None
            if status == 5 and want == "active":
                pass  # activation (or a resume) running there: nothing to change, the poller follows
            elif status == 5:
                errors.append(f"service {s['remote_id']}: an operation is in progress on the seller")
            elif want == "deleted" and status != 4:
                action = "delete"
            elif want == "suspended" and status == 2:
                action = "suspend"
            elif want == "active" and status == 3:
                action = "resume"
            elif want != "deleted" and status == 4:
                errors.append(f"service {s['remote_id']}: deleted on the seller")
            if action:
                try:
                    getattr(client, action)(itemtype, s["remote_id"])
                    status = {"delete": 4, "suspend": 3, "resume": 2}[action]
                except BillmgrError as e:
                    errors.append(f"service {s['remote_id']}: the seller refused to {action}: {e}")
            actual[str(s["id"])] = {"remote_id": s["remote_id"], "item_status": status}
    if errors:
        raise PlatformError("; ".join(errors))
    return {"services": actual}
