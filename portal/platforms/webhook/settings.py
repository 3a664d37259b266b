"""Webhook settings: the connection alone (URL, HTTP Basic login and password, timeout; the
connections page or ``flask platforms set webhook``). The webhook takes no options, so
``Settings`` is empty; a platform with options types them here, read from the connection's
stored options (see smotreshka/settings.py) or from the app's config (see stalker/settings.py),
never from the environment (``config.load`` is the only reader of it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    pass


def from_options(options: dict | None) -> Settings:
    return Settings()
