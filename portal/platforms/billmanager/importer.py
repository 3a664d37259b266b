"""Tariff import from the seller's ``pricelist.export`` (the wizard) and re-sync.

1. ``fetch_pricelist(handler_id)`` (a job) reads the price list with the handler's
   credentials (so the reseller's own prices apply) and keeps it on the handler.
2. The wizard lists the product types, tariffs and providers (data centers) of that list;
   ``import_tariff`` creates our tariff, disabled, with the seller's periods, costs and
   included resources, and the catalog service the charge run charges monthly through.
3. Staff rename and reprice it, then enable it (``update_tariff``).
4. ``resync_tariff(tariff_id)`` (a job) re-reads that one tariff and applies what changed on
   the seller (name there, periods, costs, resources; gone or inactive there -> disabled
   here); our name and price stay ours.

Only month-based periods are kept (``period`` with type month or year); we sell monthly, so a
tariff without a one-month period cannot be imported (BILLmanager's "periods comparison" is
not implemented: to confirm with the vendor).
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from ...billing import audit, directory
from ...billing.errors import BillingError
from ...billing.ledger import parse_amount
from ...extensions import db
from ...models import BmHandler, BmTariff, utcnow
from ..http import PlatformError, recording
from .client import as_list
from .handlers import client_for, record_calls, set_tariff_handlers


def parse_pricelist(row: dict) -> dict:
    """One ``doc.pricelist`` entry, unwrapped, in our terms."""
    price = row.get("price") or {}
    periods = []
    for p in as_list(price.get("period") if isinstance(price, dict) else None):
        kind = p.get("$type") or p.get("type") or "month"
        length = int(p.get("$length") or p.get("length") or 1)
        months = {"month": length, "year": 12 * length}.get(kind)
        cost = p.get("$cost") or p.get("cost")
        if months and cost not in (None, ""):
            periods.append({"months": months, "cost": str(Decimal(str(cost)).quantize(Decimal("0.01")))})
    return {
        "id": str(row.get("id")),
        "name": row.get("name_ru") or row.get("name") or str(row.get("id")),
        "itemtype": (row.get("itemtype_info") or {}).get("intname") or str(row.get("itemtype") or ""),
        "active": str(row.get("active", "on")) in ("on", "true", "1", "yes"),
        "currency": price.get("$currency") if isinstance(price, dict) else None,
        "periods": sorted(periods, key=lambda p: p["months"]),
        "datacenters": [{"id": str(d.get("id")), "name": d.get("name") or str(d.get("id"))}
                        for d in as_list(row.get("datacenter"))],
        "resources": [{"intname": a.get("intname") or "", "name": a.get("name") or a.get("intname") or "",
                       "amount": str(a.get("addonlimit") or ""), "measure": a.get("measure") or ""}
                      for a in as_list(row.get("addon"))],
    }


def _read(handler_id: int, actor: str, **filters) -> list[dict]:
    handler = db.session.get(BmHandler, handler_id)
    if handler is None:
        raise PlatformError("no such handler")
    client = client_for(handler)
    db.session.rollback()
    error = None
    rows: list[dict] = []
    with recording() as calls:
        try:
            rows = [parse_pricelist(r) for r in client.export_pricelists(**filters)]
        except PlatformError as e:
            error = str(e)
    record_calls(calls, actor, "bm_handler", handler_id)
    db.session.commit()
    if error:
        raise PlatformError(error)
    return rows


def fetch_pricelist(handler_id: int, *, actor: str = "system") -> dict:
    """Read the seller's price list for the wizard; returns counts for the progress row."""
    rows = _read(handler_id, actor)
    handler = db.session.get(BmHandler, handler_id)
    handler.pricelist, handler.pricelist_at = rows, utcnow()
    db.session.commit()
    return {"tariffs": len(rows), "itemtypes": sorted({r["itemtype"] for r in rows})}


def import_tariff(handler: BmHandler, remote_id: str, datacenter: str | None, *, actor: str,
                  handler_ids: list | None = None) -> BmTariff:
    """Create our (disabled) tariff from the stored price list; the caller commits.
    ``handler_ids``: the handlers that may sell it, in priority order (default: this one)."""
    row = next((r for r in handler.pricelist or [] if r["id"] == str(remote_id)), None)
    errors = {}
    if row is None:
        errors["pricelist"] = "not in the price list read from the seller"
    else:
        if row["itemtype"] != handler.itemtype:
            errors["pricelist"] = "another product type than the handler's"
        elif not any(p["months"] == 1 for p in row["periods"]):
            errors["pricelist"] = "the seller has no one-month period for this tariff"
        dcs = {d["id"]: d["name"] for d in row["datacenters"]}
        if dcs and datacenter not in dcs:
            errors["datacenter"] = "choose one of the tariff's providers"
        if db.session.scalar(select(BmTariff).filter_by(handler_id=handler.id, remote_id=row["id"])):
            errors["pricelist"] = "already imported"
    if errors:
        raise BillingError(errors)
    cost = next(Decimal(p["cost"]) for p in row["periods"] if p["months"] == 1)
    service = directory.save_service({"name": row["name"], "price": str(cost), "charge_period": "month",
                                      "charge_mode": "monthly_advance", "platform": "billmanager",
                                      "external_id": f"bm-{handler.id}-{row['id']}"}, actor=actor)
    tariff = BmTariff(handler_id=handler.id, remote_id=row["id"], itemtype=row["itemtype"], name=row["name"],
                      remote_name=row["name"], remote_datacenter=datacenter,
                      remote_datacenter_name=dcs.get(datacenter) if datacenter else None,
                      currency=row["currency"], periods=row["periods"], resources=row["resources"], price=cost,
                      enabled=False, remote_active=row["active"], service_id=service.id, synced_at=utcnow())
    db.session.add(tariff)
    db.session.flush()
    set_tariff_handlers(tariff, handler_ids or [handler.id], actor=actor)
    audit.record(actor, "billmanager.tariff.import", tariff, tariff.name,
                 after={"handler": handler.name, "remote_id": row["id"], "price": str(cost)})
    return tariff


def update_tariff(tariff: BmTariff, data: dict, *, actor: str) -> BmTariff:
    """Rename, reprice, enable or disable, and (``handler_ids``) set the handlers that sell it;
    the caller commits."""
    errors = {}
    name = (data.get("name") or tariff.name).strip()
    if not name or len(name) > 200:
        errors["name"] = "1-200 characters"
    price = tariff.price
    if data.get("price") not in (None, ""):
        try:
            price = parse_amount(data["price"], "price")
            if price <= 0:
                errors["price"] = "must be positive"
        except BillingError as e:
            errors.update(e.fields)
    enabled = tariff.enabled if data.get("enabled") is None else bool(data["enabled"])
    if enabled and not tariff.remote_active:
        errors["enabled"] = "the seller no longer offers this tariff"
    if errors:
        raise BillingError(errors)
    if data.get("handler_ids") is not None:
        set_tariff_handlers(tariff, data["handler_ids"], actor=actor)
    before = {"name": tariff.name, "price": str(tariff.price), "enabled": tariff.enabled}
    tariff.name, tariff.price, tariff.enabled = name, price, enabled
    service = tariff_service(tariff)
    directory.save_service({"name": name, "price": str(price)}, actor=actor, service=service)
    audit.record(actor, "billmanager.tariff.update", tariff, name, before=before,
                 after={"name": name, "price": str(price), "enabled": enabled})
    return tariff


def tariff_service(tariff: BmTariff):
    from ...models import CatalogService

    return db.session.get(CatalogService, tariff.service_id)


def resync_tariff(tariff_id: int, *, actor: str = "system") -> str:
    """Re-read one imported tariff and apply the seller's changes; returns what changed."""
    tariff = db.session.get(BmTariff, tariff_id)
    if tariff is None:
        raise PlatformError("no such tariff")
    handler_id, remote_id = tariff.handler_id, tariff.remote_id
    db.session.rollback()
    rows = _read(handler_id, actor, pricelist=remote_id)
    row = next((r for r in rows if r["id"] == remote_id), None)
    tariff = db.session.get(BmTariff, tariff_id)
    changes = []
    if row is None or not row["active"]:
        if tariff.remote_active or tariff.enabled:
            changes.append("gone on the seller: disabled")
        tariff.remote_active, tariff.enabled = False, False
    else:
        for attr in ("periods", "resources", "currency"):
            if getattr(tariff, attr) != row[attr]:
                changes.append(attr)
                setattr(tariff, attr, row[attr])
        if tariff.remote_name != row["name"]:
            changes.append("name on the seller")
            tariff.remote_name = row["name"]
        tariff.remote_active = True
    tariff.synced_at = utcnow()
    audit.record(actor, "billmanager.tariff.sync", tariff, tariff.name, after={"changes": changes})
    db.session.commit()
    return ", ".join(changes) or "no changes"
