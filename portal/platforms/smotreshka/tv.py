"""TV subscriptions in billing: what an account holds and may take, what a change costs
(billing's quote), and the one way to add, replace or drop a TV service (used by upsale commit,
the cabinet and the drift report's "accept" action). The assignment rules themselves
(a second basic replaces the first) live in portal.billing.accounts."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select

from ...billing import accounts as acc
from ...billing import clock
from ...billing.blocking import can_afford
from ...billing.errors import BillingError
from ...billing.quotes import Quote
from ...billing.quotes import quote as billing_quote
from ...extensions import db
from ...models import Account, AssignedService, CatalogService
from .sync import NAME, tv_services


def offered(account: Account) -> list[CatalogService]:
    """TV services of this platform that the account's tariffs offer, basics first."""
    ids = acc.offered_service_ids(account)
    services = db.session.scalars(select(CatalogService).where(
        CatalogService.id.in_(ids), CatalogService.platform == NAME)).all() if ids else []
    return sorted(services, key=lambda s: (s.iptv_kind != "basic", s.name))


BY_EXTERNAL_ID = select(CatalogService).where(CatalogService.platform == NAME,
                                             CatalogService.external_id == bindparam("external_id"))


def by_external_id(external_id: str) -> CatalogService | None:
    return db.session.scalar(BY_EXTERNAL_ID, {"external_id": str(external_id)})


def live(account: Account) -> list[AssignedService]:
    return tv_services(account)


def current_basic(account: Account) -> AssignedService | None:
    """The basic TV service an account holds (billing's rule: at most one per platform)."""
    return next((s for s in live(account) if s.service.iptv_kind == "basic"), None)


def holding(account: Account, service: CatalogService) -> AssignedService | None:
    return next((s for s in live(account) if s.service_id == service.id), None)


def quote(account: Account, add: CatalogService | None, remove: AssignedService | None = None,
          trial_days: int = 0) -> Quote:
    """What the change costs and gives back today (billing's quote: the charge run's rules)."""
    starts = clock.today() + timedelta(days=max(0, trial_days))
    return billing_quote(account, add=add, remove=remove, starts_on=starts)


def affordable(account: Account, q: Quote) -> bool:
    """Whether the balance rule lets the change through (billing.blocking.can_afford)."""
    return can_afford(account.contract, q.charge - q.refund)


def change(account: Account, *, add: CatalogService | None, remove: AssignedService | None, actor: str,
           trial_days: int = 0, order_key: str | None = None,
           charge_key: tuple[str, str] | None = None) -> AssignedService | None:
    """Stop ``remove`` and assign ``add`` (from today, or after a trial), in the caller's
    transaction; billing charges and refunds and notifies the platform. A basic added over
    another basic replaces it, and a service held already is refused (billing's rules).
    ``order_key`` and ``charge_key``: see billing.accounts.assign_service."""
    if add is not None and add.platform != NAME:
        raise BillingError({"service_id": "not a service of this platform"})
    if remove is not None and remove.state != "ended":
        acc.end_service(remove, actor=actor)
    if add is None:
        return None
    starts = clock.today() + timedelta(days=max(0, trial_days))
    return acc.assign_service(account, {"service_id": add.id, "starts_on": starts}, actor=actor,
                              order_key=order_key, charge_key=charge_key)


# -- the cabinet's self-service -------------------------------------------------------------------

def plan(account: Account, action: str, service_id) -> dict:
    """What a subscriber's change would do, before they confirm: ``action`` is ``switch`` (to
    another basic), ``add`` (an additional one) or ``remove`` (an additional one). Returns the
    service, what it replaces, the price, the charge today, the refund, the balance after, and
    ``error`` (an English message) when it cannot be done."""
    service = db.session.get(CatalogService, service_id) if isinstance(service_id, int) else None
    out = {"action": action, "service": service, "replaces": None, "balance": account.contract.balance,
           "error": None}
    if service is None or service.platform != NAME or action not in ("switch", "add", "remove"):
        raise BillingError({"service_id": "no such TV service"})
    held = holding(account, service)
    if action == "remove":
        if held is None or service.iptv_kind == "basic":
            raise BillingError({"service_id": "only an additional service you have can be removed"})
        out["replaces"] = held
        q = quote(account, None, held)
    else:
        if service not in offered(account):
            raise BillingError({"service_id": "your tariff does not offer this service"})
        if held is not None:
            raise BillingError({"service_id": "you have this service already"})
        if (action == "switch") != (service.iptv_kind == "basic"):
            raise BillingError({"service_id": "switch to a basic service, add an additional one"})
        if action == "switch":
            out["replaces"] = current_basic(account)
        q = quote(account, service)
    out["charge"], out["refund"] = q.charge, q.refund
    if account.status != "active":
        out["error"] = "the account is not active"
    elif not affordable(account, q):
        out["error"] = "not enough money on the balance"
    out["balance_after"] = out["balance"] + q.net
    return out


def apply_plan(account: Account, action: str, service_id, *, actor: str, order_key: str | None = None) -> dict:
    """Do what ``plan`` showed, after checking again under the account's lock; the caller
    commits. ``order_key``: the confirm form's one-time key: a repeat (a double click) finds
    the change done and does nothing more."""
    acc.lock_account(account)
    done = acc.done_order(account, order_key) if order_key and action != "remove" else None
    if done is not None:
        return {"action": action, "service": done.service, "repeat": True}
    p = plan(account, action, service_id)
    if p["error"]:
        raise BillingError({"service_id": p["error"]})
    if action == "remove":
        change(account, add=None, remove=p["replaces"], actor=actor)
    else:
        change(account, add=p["service"], remove=p["replaces"], actor=actor, order_key=order_key)
    return p
