"""BILLmanager reselling jobs (portal.platforms.billmanager does the work)."""
from __future__ import annotations

from portal.platforms.billmanager import handlers, importer, orders

from . import in_app_context, report


def _say(text: str) -> str:
    report(result=text)
    return text


@in_app_context
def check_handler(handler_id: int, actor: str = "system") -> dict:
    """The selling account's balance and item types: the figures themselves (the check's row
    formats the amount in the reader's language), and a line for the jobs page."""
    r = handlers.refresh_balance(handler_id, actor=actor, with_types=True)
    _say(f"{r['balance']} {r['currency'] or ''}".strip()
         + (f" · {', '.join(r['itemtypes'])}" if r["itemtypes"] else ""))
    return r


@in_app_context
def fetch_pricelist(handler_id: int, actor: str = "system") -> str:
    r = importer.fetch_pricelist(handler_id, actor=actor)
    return _say(f"{r['tariffs']}: {', '.join(r['itemtypes'])}")


@in_app_context
def resync_tariff(tariff_id: int, actor: str = "system") -> str:
    return _say(importer.resync_tariff(tariff_id, actor=actor))


@in_app_context
def order_service(svc_id: int) -> str:
    return orders.order_service(svc_id)


@in_app_context
def renew_due(day: str | None = None) -> dict:
    """The nightly renewal (or staff's "renew now"; ``day``: ISO date, default today)."""
    from datetime import date

    result = orders.renew_due(date.fromisoformat(day) if day else None)
    report(result=", ".join(f"{k} {v}" for k, v in result.items()))
    return result


@in_app_context
def retry_orders() -> int:
    return orders.retry_due()


@in_app_context
def poll() -> dict:
    return orders.poll()


@in_app_context
def check_balances() -> dict:
    return handlers.check_balances()
