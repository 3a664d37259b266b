"""Migration 2b13d1c3e5f6 (issue 13, item 5): plans imported before keep working."""
from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import create_engine, text

from portal.config import ROOT, normalize_db_url
from tests.conftest import TMP

BEFORE = "1a13c0b2d4e5"


def _scratch_url() -> str:
    url = os.environ["DATABASE_URL"]
    if url.startswith("sqlite"):
        return f"sqlite:///{TMP / 'stalker_catalog_migration.db'}"
    # named after the test database, so that xdist workers and other runs do not share it
    base, _, database = url.rpartition("/")
    name = f"{database}_stalker_catalog_migration"
    admin = create_engine(normalize_db_url(f"{base}/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{base}/{name}"


def _flask_db(url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "wsgi.py"}
    done = subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr


def test_plans_imported_before_keep_their_tariffs_and_wait_for_a_resync_for_packages(app):
    """A tariff imported from plan 9003 before the upgrade: is it still bound to plan «9003»
    afterwards (as text), its packages unknown until staff re-sync it, and does a downgrade
    give the old table back?"""
    url = _scratch_url()
    _flask_db(url, "upgrade", BEFORE)
    engine = create_engine(normalize_db_url(url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tariffs (id, name, kind, monthly_fee, is_multi) "
                          "VALUES (9003, 'Максимальный', 'services', 0, false)"))
        conn.execute(text("INSERT INTO stalker_imported_tariffs (tariff_id, plan_name, imported_at) "
                          "VALUES (9003, 'Максимальный', CURRENT_TIMESTAMP)"))
    _flask_db(url, "upgrade", "2b13d1c3e5f6")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT tariff_id, plan_external_id, packages_known "
                                "FROM stalker_imported_tariffs")).one()
        packages = conn.execute(text("SELECT count(*) FROM stalker_plan_packages")).scalar()
    assert (row[0], row[1], bool(row[2]), packages) == (9003, "9003", False, 0)
    _flask_db(url, "downgrade", BEFORE)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT tariff_id, plan_name FROM stalker_imported_tariffs")).one() == \
            (9003, "Максимальный")
    engine.dispose()
