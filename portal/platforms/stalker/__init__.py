"""Stalker (Ministra) middleware: accounts kept in step with billing through the REST API v1
(client.py), a local emulator (emulator.py), the billing -> Stalker rule (sync.py), the Stalker
user each account is bound to (binding.py), billing's check before a tariff or service change
(checks.py), the console's snapshot and actions (console.py), settings (settings.py) and the demo
for ``make run`` (demo.py). Admin pages:
portal/admin/stalker.py (the console and the account page's panel)."""
from __future__ import annotations

from ..registry import DemoEmulator, Platform, register
from . import checks, client, sync


def _demo_emulator() -> DemoEmulator:
    from .demo import emulator

    return emulator()


def _demo_load() -> None:
    from .demo import load

    load()


register(Platform(name="stalker", title="Stalker", desired_state=sync.desired_state, client=client.StalkerClient,
                  reconcile=sync.reconcile, demo_emulator=_demo_emulator, demo_load=_demo_load,
                  admin_endpoint="admin.stalker", check_endpoint="admin.stalker_check",
                  account_template="admin/stalker/_binding.html", check_change=checks.check_change))
