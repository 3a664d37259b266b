"""What staff do on the BILLmanager pages, without Flask: the views parse the form, call these
and commit (or roll back on BillingError); anything that calls the seller runs as a job
(jobs/billmanager.py). What the pages list: handlers, data centers and departments, the
import wizard's rows, imported tariffs, resold services with their sync state. What staff
change: the small lists, a tariff's sellers in priority order, an order on a subscriber's
behalf, and a service's restart, suspend, resume or delete.

Errors are BillingError with English msgids (the views translate them; admin/billmanager.py
lists the ones raised here for the catalog).
"""
from __future__ import annotations

from sqlalchemy import select

from ...billing import accounts as acc
from ...billing.errors import BillingError
from ...extensions import db
from ...models import Account, BmHandler, BmService, BmTariff, DataCenter, Department, PlatformConnection, SyncState
from . import handlers, orders

LISTS = {"datacenters": DataCenter, "departments": Department}
STATES = ("pending", "ordering", "ordered", "attention", "deleted")
SERVICE_ACTIONS = ("restart", "not-ordered", "suspend", "resume", "delete")


def handler_list() -> list[BmHandler]:
    return db.session.scalars(select(BmHandler).order_by(BmHandler.itemtype, BmHandler.sort, BmHandler.id)).all()


def named_lists() -> tuple[list[DataCenter], list[Department]]:
    """The data centers and the departments, by name."""
    return (db.session.scalars(select(DataCenter).order_by(DataCenter.name)).all(),
            db.session.scalars(select(Department).order_by(Department.name)).all())


def demo_seller() -> dict | None:
    """The demo seller's URL and credentials when `make run` started one (a hint on the new
    handler form), else None."""
    row = db.session.scalar(select(PlatformConnection).filter_by(kind="billmanager"))
    if row is not None and (row.options or {}).get("demo_emulator"):
        from .emulator import DEMO_LOGIN, DEMO_PASSWORD

        return {"url": row.url, "login": DEMO_LOGIN, "password": DEMO_PASSWORD}
    return None


def save_list_item(kind: str, name: str, *, actor: str, obj=None, delete: bool = False):
    """Add or rename a data center or a department (``kind``: a key of LISTS), or delete one."""
    if delete:
        handlers.delete_named(obj, actor=actor)
        return None
    return handlers.save_named(LISTS[kind], name, actor=actor, obj=obj)


def wizard(handler: BmHandler | None, itemtype: str | None) -> dict:
    """The import wizard's second step for a handler whose price list was read: its product
    types, the rows of the chosen one (default: the handler's own), the remote ids already
    imported, and the handlers that may sell alongside it."""
    rows, itemtypes, imported = [], [], set()
    if handler is not None and handler.pricelist is not None:
        itemtypes = sorted({r["itemtype"] for r in handler.pricelist})
        itemtype = itemtype or (handler.itemtype if handler.itemtype in itemtypes else None)
        rows = [r for r in handler.pricelist if r["itemtype"] == itemtype]
        imported = {t.remote_id for t in handlers.tariffs_of(handler)}
    else:
        itemtype = None
    sellers = handlers.eligible_handlers_of(handler) if handler is not None else []
    return {"rows": rows, "itemtypes": itemtypes, "itemtype": itemtype, "imported": imported, "sellers": sellers}


def priorities(fields: dict[str, str]) -> list[int] | None:
    """The handlers that sell a tariff, from a form's ``prio_<handler id>`` fields (a number:
    1 is tried first; empty: not used), in priority order; None when there are none."""
    prio = {k[5:]: (v or "").strip() for k, v in fields.items() if k.startswith("prio_")}
    if not prio:
        return None
    ranked = []
    for hid, value in prio.items():
        if value:
            if not (hid.isdigit() and value.isdigit()):
                raise BillingError({"handler_ids": "priorities are whole numbers"})
            ranked.append((int(value), int(hid)))
    return [hid for _p, hid in sorted(ranked)]


def tariff_list() -> list[BmTariff]:
    return db.session.scalars(select(BmTariff).order_by(BmTariff.name)).all()


def services(state: str = "", q: str = "", limit: int = 200) -> dict:
    """Resold services, newest first, narrowed by state and by a search over the account's
    login, the domain and the seller's id; at most ``limit`` (``more``: there are others),
    with each account's sync state and the tariffs one may order."""
    query = select(BmService).join(Account, Account.id == BmService.account_id)
    if state in STATES:
        query = query.where(BmService.state == state)
    if q:
        query = query.where(Account.login.icontains(q, autoescape=True) | BmService.domain.icontains(q, autoescape=True)
                            | (BmService.remote_id == q))
    items = db.session.scalars(query.order_by(BmService.id.desc()).limit(limit + 1)).all()
    more = len(items) > limit
    items = items[:limit]
    sync = {st.account_id: st for st in db.session.scalars(select(SyncState).where(
        SyncState.platform == "billmanager", SyncState.account_id.in_([s.account_id for s in items])))}
    tariffs = db.session.scalars(select(BmTariff).filter_by(enabled=True).order_by(BmTariff.name)).all()
    return {"items": items, "more": more, "sync": sync, "tariffs": tariffs}


def order_for(login: str, tariff_id: int | None, *, domain: str | None, actor: str,
              nonce: str | None = None) -> BmService:
    """Order on a subscriber's behalf: the account with this login pays, as in the cabinet.
    The same ``nonce`` (the form's) orders once however often it is sent."""
    account = db.session.scalar(select(Account).filter_by(login=login or ""))
    tariff = db.session.get(BmTariff, tariff_id) if isinstance(tariff_id, int) else None
    if account is None:
        raise BillingError({"login": "no such account"})
    try:
        return orders.place_order(account, tariff, domain=domain, actor=actor,
                                  order_key=f"staff:{nonce}" if nonce else None)
    except BillingError as e:
        if "account_id" in e.fields:  # the form names the account by its login
            e.fields["login"] = e.fields.pop("account_id")
        raise


def service_action(svc: BmService, action: str, *, actor: str) -> bool:
    """Restart an order (``not-ordered``: staff checked the seller has none), or suspend,
    resume or delete the service (the seller follows through the outbox). True when the order
    is to be placed again (the caller enqueues it after its commit)."""
    if action in ("restart", "not-ordered"):
        orders.restart(svc, actor=actor, not_ordered=action == "not-ordered")
        return True
    if action in ("suspend", "resume"):
        acc.set_service_state(svc.assigned, "suspended" if action == "suspend" else "active", actor=actor)
    elif action == "delete":
        acc.end_service(svc.assigned, actor=actor)
    else:
        raise ValueError(f"unknown action {action!r}")
    return False
