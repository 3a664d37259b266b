"""TV subscriptions in billing: what an account holds and may take, what the first charge of
a service is, and the one way to add, replace or drop a TV service (used by upsale commit,
the cabinet and the drift report's "accept" action). The assignment rules themselves
(a second basic replaces the first) live in portal.billing.accounts."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import bindparam, select

from ...billing import accounts as acc
from ...billing import clock
from ...billing.blocking import can_afford, money_left
from ...billing.errors import BillingError
from ...extensions import db
from ...models import Account, AssignedService, CatalogService
from .sync import NAME, tv_services

CENT = Decimal("0.01")


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


def first_charge(service: CatalogService, day: date | None = None) -> Decimal:
    """What the charge run takes for a service assigned on ``day`` (DESIGN.md, charging rules):
    monthly in advance, the rest of the month pro rata; daily pro rata, the day's share; a
    per-day price, the price."""
    day = day or clock.today()
    price = Decimal(service.price)
    if service.charge_period == "day":
        return price
    dim = clock.days_in_month(day)
    if service.charge_mode == "daily_prorata":
        daily = (price / dim).quantize(CENT, rounding=ROUND_HALF_UP)
        return price - (dim - 1) * daily if day.day == dim else daily
    days = dim - day.day + 1
    return (price * days / dim).quantize(CENT, rounding=ROUND_HALF_UP)


def affordable(account: Account, amount: Decimal) -> bool:
    return can_afford(account.contract, amount)


def change(account: Account, *, add: CatalogService | None, remove: AssignedService | None, actor: str,
           trial_days: int = 0) -> AssignedService | None:
    """Stop ``remove`` and assign ``add`` (from today, or after a trial), in the caller's
    transaction; billing charges and refunds and notifies the platform. A basic added over
    another basic replaces it (billing's rule)."""
    if remove is not None and remove.state != "ended":
        acc.end_service(remove, actor=actor)
    if add is None:
        return None
    if add.platform != NAME:
        raise BillingError({"service_id": "not a service of this platform"})
    starts = clock.today() + timedelta(days=max(0, trial_days))
    return acc.assign_service(account, {"service_id": add.id, "starts_on": starts}, actor=actor)


# -- the cabinet's self-service -------------------------------------------------------------------

def plan(account: Account, action: str, service_id) -> dict:
    """What a subscriber's change would do, before they confirm: ``action`` is ``switch`` (to
    another basic), ``add`` (an additional one) or ``remove`` (an additional one). Returns the
    service, what it replaces, the price, the charge today, the refund, the balance after, and
    ``error`` (an English message) when it cannot be done."""
    service = db.session.get(CatalogService, service_id) if isinstance(service_id, int) else None
    out = {"action": action, "service": service, "replaces": None, "charge": Decimal("0"), "refund": Decimal("0"),
           "balance": account.contract.balance, "error": None}
    if service is None or service.platform != NAME or action not in ("switch", "add", "remove"):
        raise BillingError({"service_id": "no such TV service"})
    held = holding(account, service)
    if action == "remove":
        if held is None or service.iptv_kind == "basic":
            raise BillingError({"service_id": "only an additional service you have can be removed"})
        out["replaces"] = held
        out["refund"] = _refund(held)
    else:
        if service not in offered(account):
            raise BillingError({"service_id": "your tariff does not offer this service"})
        if held is not None:
            raise BillingError({"service_id": "you have this service already"})
        if (action == "switch") != (service.iptv_kind == "basic"):
            raise BillingError({"service_id": "switch to a basic service, add an additional one"})
        if action == "switch":
            out["replaces"] = current_basic(account)
            out["refund"] = _refund(out["replaces"]) if out["replaces"] else Decimal("0")
        out["charge"] = first_charge(service)
    if account.status != "active":
        out["error"] = "the account is not active"
    elif out["charge"] and not account.contract.do_not_block and \
            money_left(account.contract) + out["refund"] - out["charge"] < 0:
        out["error"] = "not enough money on the balance"
    out["balance_after"] = out["balance"] + out["refund"] - out["charge"]
    return out


def _refund(assigned: AssignedService | None) -> Decimal:
    """Roughly what ending a monthly-in-advance service today gives back (today and the rest of
    the month); the charge run posts the exact amount."""
    if assigned is None or assigned.starts_on > clock.today() or assigned.service.charge_mode != "monthly_advance" \
            or assigned.service.charge_period != "month":
        return Decimal("0")
    return first_charge(assigned.service)


def apply_plan(account: Account, action: str, service_id, *, actor: str) -> dict:
    """Do what ``plan`` showed, after checking again; the caller commits."""
    p = plan(account, action, service_id)
    if p["error"]:
        raise BillingError({"service_id": p["error"]})
    if action == "remove":
        change(account, add=None, remove=p["replaces"], actor=actor)
    else:
        change(account, add=p["service"], remove=p["replaces"], actor=actor)
    return p
