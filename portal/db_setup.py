"""Engine tuning and schema helpers shared by the app, the CLI and the tests."""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine


def configure_engine(engine: Engine) -> None:
    """SQLite: WAL, a busy timeout and foreign keys, because web and worker write at once.

    Transactions start with BEGIN IMMEDIATE so that two writers queue on the busy timeout
    instead of failing to upgrade a read lock half-way through.
    """
    if engine.dialect.name != "sqlite" or getattr(engine, "_portal_configured", False):
        return
    engine._portal_configured = True

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
