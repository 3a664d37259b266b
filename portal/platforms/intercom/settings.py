"""«Интерсвязь» settings: the connection's options (KEY=VALUE lines on the connections page;
``flask platforms set intercom --option KEY=VALUE``), typed. The connection's password is the
platform's API key; its login is not used.

* ``push_linked_profiles`` (yes): billing also writes the card (name, phones) of a profile it
  linked to, not only of those it created;
* ``keep_linked_profiles`` (no): a profile billing linked to (did not create) is kept when its
  last flat leaves it, instead of being deleted;
* ``limited_open_code`` (no): limited access may still open the door by code.
"""
from __future__ import annotations

from dataclasses import dataclass


def option(options: dict | None, name: str, default: bool) -> bool:
    """A yes/no option of the connection (``flask platforms set --option k=v`` stores text)."""
    value = (options or {}).get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off")
    return bool(value)


@dataclass(frozen=True)
class Settings:
    push_linked_profiles: bool = True
    keep_linked_profiles: bool = False
    limited_open_code: bool = False


def from_options(options: dict | None) -> Settings:
    return Settings(push_linked_profiles=option(options, "push_linked_profiles", True),
                    keep_linked_profiles=option(options, "keep_linked_profiles", False),
                    limited_open_code=option(options, "limited_open_code", False))
