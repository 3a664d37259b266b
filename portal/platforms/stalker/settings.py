"""Stalker settings: what the portal's configuration says about Stalker (``config.load`` reads
the environment; nothing here does). The connection itself (URL, API login and password) is the
stored ``PlatformConnection`` (connections page, ``flask platforms set stalker``); Stalker takes
no options on it."""
from __future__ import annotations

REFRESH_INTERVAL = 900  # seconds between snapshot refreshes of the console (STALKER_REFRESH_INTERVAL)


def refresh_interval(config) -> int:
    """Seconds between the console snapshot's scheduled refreshes (jobs/schedules.py)."""
    return int(config.get("STALKER_REFRESH_INTERVAL") or REFRESH_INTERVAL)
