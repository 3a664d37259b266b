"""Stalker (Ministra) middleware: accounts kept in step with billing through the REST API v1
(client.py), a local emulator (emulator.py), the billing -> Stalker rule (sync.py), the Stalker
user each account is bound to (binding.py), billing's check before a tariff or service change
(checks.py) and the console's snapshot and actions (console.py). Admin pages:
portal/admin/stalker.py, and the account page's panel (portal/admin/stalker_binding.py)."""
from __future__ import annotations

from ..registry import DemoEmulator, Platform, register
from . import checks, client, sync

def demo_emulator() -> DemoEmulator:
    """``make run``: an emulator in this process with the demo Stalker data."""
    from .emulator import StalkerEmulator

    emu = StalkerEmulator(login="api", password="api-secret").seed_demo().start()
    emu.keep_requests = False
    return DemoEmulator(url=emu.url, login=emu.api_login, password=emu.api_password, stop=emu.stop)


def demo_load() -> None:
    """The agent that binds accounts to Stalker (nothing when one exists)."""
    from sqlalchemy import select

    from ...billing import directory
    from ...extensions import db
    from ...models import Agent

    if db.session.scalar(select(Agent).where(Agent.platform == "stalker")) is None:
        directory.save_agent({"name": "Stalker (ТВ)", "kind": "iptv", "platform": "stalker"}, actor="demo")


register(Platform(name="stalker", title="Stalker", desired_state=sync.desired_state, client=client.StalkerClient,
                  reconcile=sync.reconcile, demo_emulator=demo_emulator, demo_load=demo_load,
                  admin_endpoint="admin.stalker", check_endpoint="admin.stalker_check",
                  account_template="admin/stalker/_binding.html", check_change=checks.check_change))
