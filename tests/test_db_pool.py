"""Pooled PostgreSQL connections without a pre-ping (issue 12 item 8: the pre-ping was a round
trip on every request): a connection the server closed while it sat in the pool is found by its
socket at checkout and replaced, so the next request does not fail (portal.db_setup)."""
from __future__ import annotations

import os
import time
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text

from portal.extensions import db
from tests.builders import gen_contract, gen_token

pytestmark = pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                                reason="terminates PostgreSQL backends: PostgreSQL only")


def _terminate_others(app) -> int:
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with psycopg.connect(url, autocommit=True) as conn:
        killed = conn.execute(f"SELECT count(pg_terminate_backend(pid)) {others}").fetchone()[0]
        deadline = time.monotonic() + 10
        while conn.execute(f"SELECT count(*) {others}").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)  # until they have exited (and so said goodbye on their sockets)
    return killed


def test_a_payment_after_the_server_dropped_every_pooled_connection_goes_through(app, client, ctx):
    """The database restarted (its backends terminated) between two payments of a bank: the
    second is answered 201 on a new connection, not 500."""
    assert not db.engine.pool._pre_ping
    contract = gen_contract()
    headers = {"Authorization": f"Bearer {gen_token('manager', name='bank')}"}
    db.session.commit()
    first = client.post("/api/v1/payments", headers=headers,
                        json={"contract_id": contract.id, "amount": "10.00", "external_id": "p1"})
    assert first.status_code == 201
    db.session.remove()  # the test's own connection back to the pool too
    assert _terminate_others(app) >= 1
    second = client.post("/api/v1/payments", headers=headers,
                         json={"contract_id": contract.id, "amount": "5.00", "external_id": "p2"})
    assert second.status_code == 201, second.get_data(as_text=True)
    balance = db.session.execute(text("SELECT balance FROM contracts WHERE id = :id"), {"id": contract.id}).scalar()
    assert Decimal(balance) / 100 == Decimal("15.00")


def test_a_check_sent_by_the_driver_reports_a_dropped_connection_as_sqlalchemy_does(app, ctx):
    """The hot paths' row-version check goes through psycopg itself (db_setup.driver_first): when
    the server drops the connection under it, is the error SQLAlchemy's, marked invalidated (so
    the upsale's "once more on a new connection" applies), and does the next request work?"""
    from sqlalchemy.exc import DBAPIError

    from portal.db_setup import driver_first

    assert driver_first("SELECT 1 + %(n)s", {"n": 1}) == (2,)
    pid = driver_first("SELECT pg_backend_pid()", {})[0]
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(DBAPIError) as failed:
        driver_first("SELECT 1", {})
    assert failed.value.connection_invalidated
    db.session.rollback()
    assert driver_first("SELECT pg_backend_pid() <> %(pid)s", {"pid": pid}) == (True,)


def test_the_description_the_engine_reads_is_psycopgs_own(app, ctx):
    """Results' descriptions are built on demand (db_setup._Description): a statement read with
    text() through the engine (SQLAlchemy then reads the names and types from the description)
    gives the columns psycopg itself reports, and a statement without rows none."""
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    sql = "SELECT 1 AS one, 'x'::text AS two, now() AS three, NULL::numeric(12, 2) AS four"
    with psycopg.connect(url) as plain:
        expected = [(c.name, c.type_code, c.precision, c.scale) for c in plain.execute(sql).description]
    raw = db.session.connection().connection.driver_connection
    cursor = raw.execute(sql)
    described = cursor.description
    assert len(described) == 4
    assert [(c.name, c.type_code, c.precision, c.scale) for c in described] == expected
    assert [c.name for c in described[1:3]] == ["two", "three"]
    assert raw.execute("SET LOCAL work_mem = '8MB'").description is None
    row = db.session.execute(text(sql)).mappings().one()
    assert list(row) == ["one", "two", "three", "four"] and row["one"] == 1 and row["two"] == "x"
    assert raw.execute("SELECT").description == []  # a result of no columns is still a result
