"""Absolute links into the portal for messages that leave it (e-mail, SMS, Telegram).

A message is rendered by a worker, with no request to take the portal's address from, so the
address is a setting: PUBLIC_URL (config.load), the portal's base as subscribers reach it
(``https://my.isp.ru`` or ``https://isp.ru/portal``). The links are built from the app's own
URL map on that base, so a moved route moves its links too. Without PUBLIC_URL (or with one that
is not an http(s) address) there is no link, and the messages say the rest without it: never
"None/cabinet/…".
"""
from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import urlsplit

from flask import current_app, url_for

from ..billing import online_payments
from ..extensions import db

log = logging.getLogger(__name__)

_SHOP_KEY = "notification_online_payment"  # session.info: is online payment on (read once per session)


@lru_cache(maxsize=8)
def _base(url: str) -> tuple[str, str, str] | None:
    """(scheme, host[:port], path) of PUBLIC_URL, or None when it is no absolute http(s) address."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        log.warning("PUBLIC_URL %r is not an http(s) address: messages go without links", url)
        return None
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


def public_url(endpoint: str, anchor: str | None = None, **values) -> str | None:
    """The absolute address of a portal page on PUBLIC_URL, or None when it is not set."""
    base = _base(current_app.config.get("PUBLIC_URL") or "") if current_app.config.get("PUBLIC_URL") else None
    if base is None:
        return None
    scheme, host, path = base
    adapter = current_app.url_map.bind(host, script_name=path or "/", url_scheme=scheme)
    return adapter.build(endpoint, values, force_external=True) + (f"#{anchor}" if anchor else "")


def external_url(endpoint: str, **values) -> str:
    """A portal address handed to another party (a payment agent, ЮKassa's notifications and
    return page): on PUBLIC_URL when it is set, so staff opening the page through an internal
    address, or a client sending another Host, do not change what the other side is given;
    else the request's own address (a portal without PUBLIC_URL has no other to offer)."""
    return public_url(endpoint, **values) or url_for(endpoint, _external=True, **values)


def _online_payment_on() -> bool:
    on = db.session.info.get(_SHOP_KEY)
    if on is None:
        shop = online_payments.shop()
        on = db.session.info[_SHOP_KEY] = bool(shop is not None and shop.enabled)
    return on


def pay_url(contract) -> str | None:
    """Where the subscriber pays this contract online: the cabinet's contract page at its pay
    form (the amount there starts at what lifts a balance block; after the login, if the
    subscriber is not logged in). None when online payment is off or PUBLIC_URL is not set."""
    if not current_app.config.get("PUBLIC_URL") or not _online_payment_on():
        return None
    return public_url("cabinet.contract", anchor=f"pay-{contract.id}", contract_id=contract.id)
