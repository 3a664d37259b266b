"""Notification jobs: prepare notices into deliveries, send one delivery, the sweep, and the
Telegram bot's updates (portal.notifications does the work)."""
from __future__ import annotations

from portal.notifications import delivery, preferences

from . import in_app_context


@in_app_context
def prepare() -> int:
    return delivery.prepare_pending()


@in_app_context
def deliver(delivery_id: int) -> str:
    return delivery.deliver(delivery_id)


@in_app_context
def sweep() -> dict:
    return delivery.sweep()


@in_app_context
def poll_telegram() -> dict:
    return preferences.poll_telegram()
