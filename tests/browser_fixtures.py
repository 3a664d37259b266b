"""Fixtures for the browser tests: headless Chromium and the portal served over real HTTP.

Chromium comes from Debian (`apt-get install chromium`; .ci/run installs it). Without it the
tests that use ``browser`` or ``page`` are skipped with that reason (conftest marks them).
Loaded for every test by conftest's ``pytest_plugins``.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.platform_fixtures import timeout_scale

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = "Chromium not installed: apt-get install chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def live(app):
    """The app served over real HTTP on a free port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    pg = context.new_page()
    # 10 s for a page's actions and 5 s for expect(...) on a quiet machine, longer under load
    # (tests.platform_fixtures.timeout_scale: bounds on waiting, not speed assertions)
    scale = timeout_scale()
    pg.set_default_timeout(10_000 * scale)
    from playwright.sync_api import expect

    expect.set_options(timeout=5_000 * scale)
    pg.on("dialog", lambda d: d.accept())  # confirmations: the user says yes
    yield pg
    context.close()
