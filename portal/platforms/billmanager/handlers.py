"""Service handlers (one product type sold through one selling account), our data centers and
departments, and the job that checks a handler's connection and reads its balance.

A handler's password is encrypted at rest and write-only. Jobs never keep a database
transaction open during a call to the seller: read, roll back, call, then write.
"""
from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import func, select

from ...billing import audit
from ...billing.crypto import decrypt, encrypt
from ...billing.errors import BillingError
from ...billing.ledger import parse_amount
from ...extensions import db
from ...models import BmHandler, BmTariff, BmTariffHandler, DataCenter, Department, PlatformConnection, utcnow
from ..http import PlatformError, audit_calls, recording
from .client import BillmgrClient, normalise_url
from .settings import CONNECTION_OPTIONS
from .settings import load as load_settings
from .tasks import close_by_key, open_task

ITEMTYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
KIND = "billmanager"


def public(h: BmHandler) -> dict:
    """A handler as it may be shown or audited: never the password."""
    return {"name": h.name, "itemtype": h.itemtype, "url": h.url, "username": h.username,
            "password_set": bool(h.password_enc), "datacenter_id": h.datacenter_id,
            "department_id": h.department_id, "sort": h.sort, "min_balance": str(h.min_balance),
            "enabled": h.enabled}


def save_handler(data: dict, *, actor: str, handler: BmHandler | None = None) -> BmHandler:
    """Create or change a handler; the caller commits. An empty password keeps the stored one
    (a new handler needs one)."""
    errors: dict = {}
    name = (data.get("name") or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "1-100 characters"
    elif db.session.scalar(select(func.count()).select_from(BmHandler).where(
            BmHandler.name == name, BmHandler.id != (handler.id if handler else -1))):
        errors["name"] = "already taken"
    itemtype = (data.get("itemtype") or "").strip()
    if not ITEMTYPE_RE.match(itemtype):
        errors["itemtype"] = "lowercase latin letters, digits and _, starting with a letter"
    url = (data.get("url") or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors["url"] = "an http:// or https:// URL"
    elif parts.username or parts.password:
        errors["url"] = "no credentials in the URL: give the login and the password separately"
    username = (data.get("username") or "").strip()
    if not username or len(username) > 200:
        errors["username"] = "required"
    password = data.get("password") or None
    if handler is None and not password:
        errors["password"] = "required"
    for key, model in (("datacenter_id", DataCenter), ("department_id", Department)):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or db.session.get(model, value) is None):
            errors[key] = "not found"
    if data.get("department_id") is None:
        errors["department_id"] = "required"
    sort = data.get("sort")
    if sort in (None, ""):
        sort = 0
    if not isinstance(sort, int) and not re.fullmatch(r"-?\d{1,6}", str(sort)):
        errors["sort"] = "must be an integer"
    try:
        min_balance = parse_amount(data.get("min_balance") or "0", "min_balance")
        if min_balance < 0:
            errors["min_balance"] = "must not be negative"
    except BillingError as e:
        errors.update(e.fields)
    if errors:
        raise BillingError(errors)
    creating = handler is None
    before = None if creating else public(handler)
    handler = handler or BmHandler(enabled=True)
    handler.name, handler.itemtype, handler.url, handler.username = name, itemtype, normalise_url(url), username
    if password:
        handler.password_enc = encrypt(password)
    handler.datacenter_id, handler.department_id = data.get("datacenter_id"), data.get("department_id")
    handler.sort, handler.min_balance = int(sort), min_balance
    if data.get("enabled") is not None:
        handler.enabled = bool(data["enabled"])
    db.session.add(handler)
    db.session.flush()
    _ensure_connection(handler, actor)
    audit.record(actor, "billmanager.handler.create" if creating else "billmanager.handler.update", handler,
                 name, before=before, after={**public(handler), "password_changed": bool(password)})
    return handler


def _ensure_connection(handler: BmHandler, actor: str) -> None:
    """The platform's connection row switches propagation (suspend, resume, delete through the
    outbox) on and off as a whole; the credentials are the handlers'. Created with the first
    handler, enabled, without a password."""
    if db.session.scalar(select(PlatformConnection).filter_by(kind=KIND)) is None:
        from ..connections import save_connection

        save_connection(KIND, url=handler.url, options=dict(CONNECTION_OPTIONS), enabled=True, actor=actor)


def client_for(handler: BmHandler) -> BillmgrClient:
    settings = load_settings(current_app.config)
    return BillmgrClient(handler.url, handler.username, decrypt(handler.password_enc) or "",
                         timeout=settings.timeout, order_timeout=settings.order_timeout)


def record_calls(calls: list[dict], actor: str, object_type: str, object_id: int | None) -> None:
    """Every call to the seller in the audit log (no credentials: the client never logs the form)."""
    audit_calls(calls, actor, object_type, object_id)


# -- small editable lists -----------------------------------------------------------------------

def save_named(model, name: str, *, actor: str, obj=None):
    """Create or rename a data center or a department; the caller commits."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise BillingError({"name": "1-100 characters"})
    clash = db.session.scalar(select(model).filter_by(name=name))
    if clash is not None and clash is not obj:
        raise BillingError({"name": "already taken"})
    creating = obj is None
    obj = obj or model()
    before = None if creating else {"name": obj.name}
    obj.name = name
    db.session.add(obj)
    db.session.flush()
    audit.record(actor, f"{model.__tablename__}.{'create' if creating else 'update'}", obj, name,
                 before=before, after={"name": name})
    return obj


def delete_named(obj, *, actor: str) -> None:
    column = BmHandler.datacenter_id if isinstance(obj, DataCenter) else BmHandler.department_id
    if db.session.scalar(select(func.count()).select_from(BmHandler).where(column == obj.id)):
        raise BillingError({"name": "in use by a handler"})
    audit.record(actor, f"{obj.__tablename__}.delete", obj, obj.name)
    db.session.delete(obj)
    db.session.flush()


# -- the connection check and the balance ------------------------------------------------------

def _below_minimum(handler: BmHandler) -> bool:
    return handler.last_balance is not None and handler.last_balance < handler.min_balance


def refresh_balance(handler_id: int, *, actor: str = "system", with_types: bool = False) -> dict:
    """Call the seller with the handler's credentials: the balance (and, for the check, the
    product types of its price list). Stores the outcome on the handler; a balance below the
    minimum opens a task for the handler's department. Raises PlatformError with the seller's
    message when it refuses."""
    handler = db.session.get(BmHandler, handler_id)
    if handler is None:
        raise PlatformError("no such handler")
    client = client_for(handler)
    db.session.rollback()
    types: list[str] = []
    error = None
    with recording() as calls:
        try:
            amount, currency = client.balance()
            if with_types:
                types = sorted({(p.get("itemtype_info") or {}).get("intname", "")
                                for p in client.export_pricelists()} - {""})
        except PlatformError as e:
            error = str(e)
    handler = db.session.get(BmHandler, handler_id)
    record_calls(calls, actor, "bm_handler", handler_id)
    if error:
        handler.last_error = error
        db.session.commit()
        raise PlatformError(error)
    handler.last_balance, handler.balance_currency, handler.last_balance_at = amount, currency, utcnow()
    handler.last_error = None
    key = f"billmanager:low-balance:{handler.id}"
    if _below_minimum(handler):
        open_task(key, f"Top up the selling account of handler «{handler.name}»",
                  department_id=handler.department_id, object_type="bm_handler", object_id=handler.id,
                  body=f"Balance {amount} {currency or ''} is below the minimum {handler.min_balance}.")
    else:
        close_by_key(key)
    db.session.commit()
    return {"balance": str(amount), "currency": currency, "itemtypes": types}


def check_balances() -> dict:
    """Twice a day: every enabled handler's balance (our processing.checkbalance)."""
    ids = list(db.session.scalars(select(BmHandler.id).where(BmHandler.enabled.is_(True)).order_by(BmHandler.id)))
    db.session.rollback()
    out = {"checked": 0, "failed": 0}
    for hid in ids:
        try:
            refresh_balance(hid)
            out["checked"] += 1
        except PlatformError:
            out["failed"] += 1
    return out


def tariffs_of(handler: BmHandler) -> list[BmTariff]:
    return list(db.session.scalars(select(BmTariff).filter_by(handler_id=handler.id).order_by(BmTariff.name)))


def min_balance_ok(balance: Decimal, cost: Decimal, minimum: Decimal) -> bool:
    """The one balance rule for orders and renewals: the selling account keeps at least the
    handler's minimum after paying."""
    return balance - cost >= minimum


# -- which handlers sell a tariff ---------------------------------------------------------------

def tariff_handlers(tariff: BmTariff) -> list[BmHandler]:
    """The handlers that may sell this tariff, in priority order (the tariff's list)."""
    return list(db.session.scalars(select(BmHandler).join(BmTariffHandler, BmTariffHandler.handler_id == BmHandler.id)
                                   .where(BmTariffHandler.tariff_id == tariff.id)
                                   .order_by(BmTariffHandler.position, BmHandler.id)))


def eligible_handlers(tariff: BmTariff) -> list[BmHandler]:
    """Handlers that could sell it: the same product type on the same seller (an order on
    another seller would not find this tariff's id there)."""
    return eligible_handlers_of(tariff.handler)


def eligible_handlers_of(base: BmHandler) -> list[BmHandler]:
    """Handlers that could sell what ``base`` imported (its product type, its seller)."""
    return list(db.session.scalars(select(BmHandler).where(BmHandler.itemtype == base.itemtype,
                                                           BmHandler.url == base.url)
                                   .order_by(BmHandler.sort, BmHandler.id)))


def set_tariff_handlers(tariff: BmTariff, handler_ids: list, *, actor: str) -> list[BmHandler]:
    """Replace the tariff's list with these handlers, first = tried first; the caller commits.
    Each must sell the tariff's product type on the tariff's seller; at least one."""
    try:
        ids = [int(h) for h in handler_ids]
    except (TypeError, ValueError):
        raise BillingError({"handler_ids": "a list of handler ids"}) from None
    if not ids:
        raise BillingError({"handler_ids": "at least one handler"})
    if len(set(ids)) != len(ids):
        raise BillingError({"handler_ids": "a handler may appear once"})
    allowed = {h.id for h in eligible_handlers(tariff)}
    if any(i not in allowed for i in ids):
        raise BillingError({"handler_ids": "only handlers of this product type on this tariff's seller"})
    before = [h.id for h in tariff_handlers(tariff)]
    if before == ids:
        return tariff_handlers(tariff)
    db.session.execute(BmTariffHandler.__table__.delete().where(BmTariffHandler.tariff_id == tariff.id))
    for position, hid in enumerate(ids):
        db.session.add(BmTariffHandler(tariff_id=tariff.id, handler_id=hid, position=position))
    db.session.flush()
    audit.record(actor, "billmanager.tariff.handlers", tariff, tariff.name, before={"handler_ids": before},
                 after={"handler_ids": ids})
    return tariff_handlers(tariff)
