"""Demo for ``make run``: the emulator with the demo Stalker data (``emulator``, through the
platform's ``demo_emulator`` hook) and the billing side (``load``, through ``demo_load``: ``flask
demo load`` calls it after the base data, in the same transaction)."""
from __future__ import annotations

from sqlalchemy import select

from ...billing import directory
from ...extensions import db
from ...models import Agent
from ..registry import DemoEmulator


def emulator() -> DemoEmulator:
    """An emulator in this process with the demo Stalker data."""
    from .emulator import StalkerEmulator

    emu = StalkerEmulator(login="api", password="api-secret").seed_demo().start()
    emu.keep_requests = False
    return DemoEmulator(url=emu.url, login=emu.api_login, password=emu.api_password, stop=emu.stop)


def load() -> None:
    """The agent that binds accounts to Stalker (nothing when one exists)."""
    if db.session.scalar(select(Agent).where(Agent.platform == "stalker")) is None:
        directory.save_agent({"name": "Stalker (ТВ)", "kind": "iptv", "platform": "stalker"}, actor="demo")
