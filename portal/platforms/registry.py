"""The platform registry: each integration registers how to derive an account's desired
state, how to build its client from a connection, and how to reconcile one account."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

_PLATFORMS: dict[str, "Platform"] = {}


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    # desired_state(account) -> dict, or None when the account must not exist there
    desired_state: Callable[[Any], dict | None]
    # reconcile(connection, account, desired) -> the actual state after applying the difference
    reconcile: Callable[[Any, Any, dict | None], dict | None]


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
