"""The platform registry: what an integration plugs in.

A platform is a package ``portal/platforms/<name>/`` that registers itself on import:

* ``sync.desired_state(account) -> dict | None``: the one rule mapping billing data to the
  state the account must have on the platform (JSON-friendly; None: must not exist there).
  Called only for accounts that are on the platform (see ``outbox.on_platform``).
* ``client.<X>Client(connection)``: the wire protocol, built from a
  ``connections.Connection`` (URL, credentials, options, timeout); HTTP goes through
  ``portal.platforms.http.HttpClient`` so that every call is audited.
* ``sync.reconcile(client, login, desired) -> dict | None``: read the actual state, apply the
  difference, return the actual state afterwards; raise ``PlatformError`` with the
  platform's own error text when it refuses.
* ``emulator.py``: a local stand-in speaking the same protocol, for tests and ``make run``.

The generic machinery (outbox, retries, audit, sync state) is in ``outbox.py`` and
``reconcile.py``; an integration never touches the database or RQ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

_PLATFORMS: dict[str, "Platform"] = {}


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    desired_state: Callable[[Any], dict | None]
    client: Callable[[Any], Any]
    reconcile: Callable[[Any, str, dict | None], dict | None]


def register(platform: Platform) -> Platform:
    _PLATFORMS[platform.name] = platform
    return platform


def get(name: str) -> Platform:
    load_builtin()
    return _PLATFORMS[name]


def known_platforms() -> list[str]:
    load_builtin()
    return sorted(_PLATFORMS)


def load_builtin() -> None:
    """Import the platform packages once; each registers itself on import."""
    from . import webhook  # noqa: F401
