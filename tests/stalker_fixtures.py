"""Fixtures for the Stalker tests: the emulator over real HTTP, the portal's connection to it,
and the agent that puts accounts on Stalker. Loaded for every test by conftest's ``pytest_plugins``."""
from __future__ import annotations

import flask_babel
import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import StalkerSnapshotRow
from portal.platforms.connections import save_connection
from portal.platforms.stalker.emulator import StalkerEmulator
from tests.builders import gen_agent, gen_staff
from tests.helpers import login

API_LOGIN, API_PASSWORD = "billing", "St4lker-Pa55"
ADMIN = "adm"


@pytest.fixture
def stalker_emulator():
    """A Stalker emulator with the demo data, wanting the portal's Basic credentials."""
    emu = StalkerEmulator(login=API_LOGIN, password=API_PASSWORD).seed_demo().start()
    yield emu
    emu.stop()


@pytest.fixture
def stalker(ctx, stalker_emulator):
    """The emulator with the portal's connection to it stored (password encrypted)."""
    save_connection("stalker", url=stalker_emulator.url, login=API_LOGIN, password=API_PASSWORD, actor="test")
    db.session.commit()
    return stalker_emulator


@pytest.fixture
def staff(client, ctx):
    """A logged-in admin's client (a manager "mgr" and a viewer "view" exist too), in English."""
    gen_staff(ADMIN, role="admin")
    gen_staff("mgr", role="manager")
    gen_staff("view", role="viewer")
    login(client, ADMIN)
    # the assertions read the English texts: the session's choice, and no locale cached yet in
    # the app context the requests share with the test
    with client.session_transaction() as session:
        session["lang"] = "en"
    flask_babel.refresh()
    return client


@pytest.fixture
def tv_agent(ctx):
    return gen_agent(kind="iptv", platform="stalker", name="Stalker TV")


def row_id(kind: str, key: str) -> int:
    """The id of a Stalker snapshot row (what the console's buttons post)."""
    return db.session.scalar(select(StalkerSnapshotRow.id).filter_by(kind=kind, key=key))
