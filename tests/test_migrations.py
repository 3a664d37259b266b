"""The Alembic migrations build exactly the schema the models describe."""
from __future__ import annotations

import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from portal.config import ROOT, normalize_db_url
from portal.db_setup import include_object_for
from portal.extensions import db
from tests.conftest import TMP


def _scratch_url() -> str:
    url = os.environ["DATABASE_URL"]
    if url.startswith("sqlite"):
        return f"sqlite:///{TMP / 'migrations.db'}"
    base = url.rpartition("/")[0]
    admin = create_engine(normalize_db_url(f"{base}/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS portal_migrations_check"))
        conn.execute(text("CREATE DATABASE portal_migrations_check"))
    admin.dispose()
    return f"{base}/portal_migrations_check"


def test_flask_db_upgrade_builds_the_models_schema(app):
    """Does `flask db upgrade` on an empty database give the schema the code expects?"""
    url = _scratch_url()
    env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "wsgi.py"}
    done = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    engine = create_engine(normalize_db_url(url))
    with engine.connect() as conn:
        # as `flask db migrate` compares (migrations/env.py): indexes for another dialect left out
        context = MigrationContext.configure(conn, opts={"include_object": include_object_for(conn.dialect.name)})
        diff = compare_metadata(context, db.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"
