"""What billing asks of the platforms, without importing them.

Billing sits below the platforms (``models`` <- ``billing`` <- ``platforms``): it never imports
``portal.platforms``. Each platform registers here instead (``portal.platforms.registry.register``
does it for every platform), and billing asks through this module:

* ``known_platforms()``: the names a service or an agent may name, and the platforms the outbox
  records changes for (``billing.outbox``);
* ``check_change(account, tariff=None, service=None)``: field errors of every platform that
  cannot carry this tariff or service for the account (the platform's ``check_change`` hook).

``create_app`` loads every platform package (``registry.load_builtin``), so the hooks are in
place before billing runs.
"""
from __future__ import annotations

from collections.abc import Callable

_CHECKS: dict[str, Callable[..., dict] | None] = {}


def register(name: str, check_change: Callable[..., dict] | None = None) -> None:
    """A platform plugs in: its name, and the check billing runs before a tariff or service
    change (answers field errors, ``{}`` when the change may go ahead)."""
    _CHECKS[name] = check_change


def known_platforms() -> list[str]:
    return sorted(_CHECKS)


def check_change(account, tariff=None, service=None) -> dict:
    """Field errors of every platform that cannot carry this tariff or service for the account
    (empty: the change may go ahead). It reads what billing knows of the platform: no network
    call, it runs in a web request."""
    errors: dict = {}
    for name in sorted(_CHECKS):
        check = _CHECKS[name]
        if check is not None:
            for key, message in check(account, tariff=tariff, service=service).items():
                errors.setdefault(key, message)
    return errors
