"""The Alembic migrations build exactly the schema the models describe, go down to nothing and
up again, and refuse (loudly, changing nothing) rows that new constraints would not take."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, delete, inspect, text
from sqlalchemy.exc import IntegrityError

from portal.billing import clock, ledger
from portal.billing.charging import charge
from portal.config import normalize_db_url
from portal.db_setup import include_object_for
from portal.extensions import db
from portal.models import Account, AssignedService, ChargeRun, LedgerEntry, Task
from tests.builders import gen_account, gen_contract, gen_service
from tests.helpers import flask_db, scratch_database

BEFORE_CHECKS = "7a18c6d4e5f7"  # the revision before the CHECK constraints (8b19d7e5f6a8)


def schema(url: str) -> dict:
    """Every table with its columns, indexes, unique, check and foreign key constraints."""
    engine = create_engine(normalize_db_url(url))
    with engine.connect() as conn:
        insp = inspect(conn)
        out = {}
        for t in sorted(insp.get_table_names()):
            out[t] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in insp.get_indexes(t)),
                "unique": sorted(u["name"] or "" for u in insp.get_unique_constraints(t)),
                "checks": sorted((c["name"] or "", " ".join(c["sqltext"].split()))
                                 for c in insp.get_check_constraints(t)),
                "fks": sorted((f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"],
                               (f.get("options") or {}).get("ondelete")) for f in insp.get_foreign_keys(t)),
            }
    engine.dispose()
    return out


def test_flask_db_upgrade_builds_the_models_schema(app, tmp_path):
    """Does `flask db upgrade` on an empty database give the schema the code expects?"""
    url = scratch_database("migrations", tmp_path)
    done = flask_db(url, "upgrade")
    assert done.returncode == 0, done.stderr
    engine = create_engine(normalize_db_url(url))
    with engine.connect() as conn:
        # as `flask db migrate` compares (migrations/env.py): indexes for another dialect left out
        context = MigrationContext.configure(conn, opts={"include_object": include_object_for(conn.dialect.name)})
        diff = compare_metadata(context, db.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"
    # autogenerate does not compare CHECK constraints: the migrations must create the models' own
    built = {name for table in schema(url).values() for name, _sql in table["checks"]}
    declared = {c.name for t in db.metadata.tables.values() for c in t.constraints
                if c.__class__.__name__ == "CheckConstraint" and c.name}
    assert declared <= built, f"CHECK constraints of the models that no migration creates: {declared - built}"


def test_every_migration_goes_down_to_nothing_and_up_again(app, tmp_path):
    """Can the schema be taken back to base by each migration's downgrade, and rebuilt the same?"""
    url = scratch_database("migrations", tmp_path)
    up = flask_db(url, "upgrade")
    assert up.returncode == 0, up.stderr
    first = schema(url)
    down = flask_db(url, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert set(schema(url)) == {"alembic_version"}, "a downgrade left tables behind"
    again = flask_db(url, "upgrade")
    assert again.returncode == 0, again.stderr
    assert schema(url) == first


# An account with a child row that goes with it (ON DELETE CASCADE) and a payment, as of 7a18c6d4e5f7
OLD_ROWS = [
    "INSERT INTO subscribers (id, kind, full_name, phones, created_at) "
    "VALUES (1, 'person', 'Old', '[]', CURRENT_TIMESTAMP)",
    "INSERT INTO contracts (id, number, subscriber_id, credit_limit, do_not_block, balance, created_at) "
    "VALUES (1, 'C-1', 1, 0, FALSE, 50000, CURRENT_TIMESTAMP)",
    "INSERT INTO agents (id, name, kind) VALUES (1, 'Agent', 'services')",
    "INSERT INTO accounts (id, contract_id, login, agent_id, status, block_reasons, created_at) "
    "VALUES (1, 1, 'old1', 1, 'active', 0, CURRENT_TIMESTAMP)",
    "INSERT INTO extra_field_definitions (id, name, title, type, required) VALUES (1, 'x', 'X', 'string', FALSE)",
    "INSERT INTO extra_field_values (account_id, field_id, value) VALUES (1, 1, '42')",
    "INSERT INTO ledger_entries (contract_id, kind, amount, created_at) "
    "VALUES (1, 'payment', 50000, CURRENT_TIMESTAMP)",
]


def test_the_constraints_migration_stops_on_rows_it_would_refuse(app, tmp_path):
    """An old database holds a state no code knows: does the upgrade stop, say which rows, and
    change nothing, and then go through once they are corrected, keeping every row?"""
    url = scratch_database("migrations", tmp_path)
    assert flask_db(url, "upgrade", BEFORE_CHECKS).returncode == 0
    engine = create_engine(normalize_db_url(url))
    with engine.begin() as conn:
        for statement in OLD_ROWS:
            conn.execute(text(statement))
        conn.execute(text("INSERT INTO tasks (title, state, created_at) VALUES ('old', 'snoozed', CURRENT_TIMESTAMP)"))
    stopped = flask_db(url, "upgrade")
    assert stopped.returncode != 0
    assert "tasks.state: 'snoozed' (1 rows)" in stopped.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE_CHECKS
        assert "job_runs" not in inspect(conn).get_table_names()
    with engine.begin() as conn:
        conn.execute(text("UPDATE tasks SET state = 'open' WHERE state = 'snoozed'"))
    engine.dispose()
    done = flask_db(url, "upgrade")
    assert done.returncode == 0, done.stderr
    assert "ck_tasks_state" in {name for name, _sql in schema(url)["tasks"]["checks"]}
    # the tables were rebuilt on SQLite (batch mode): their rows, and their children's, are all there
    engine = create_engine(normalize_db_url(url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT login, status FROM accounts")).all() == [("old1", "active")]
        assert conn.execute(text("SELECT value FROM extra_field_values")).scalars().all() == ["42"]
        assert conn.execute(text("SELECT amount FROM ledger_entries")).scalars().all() == [50000]
    engine.dispose()


def test_the_database_refuses_unknown_states_and_deleting_what_the_ledger_names(ctx):
    """Could a bug store a status no code knows, or delete a service or charge run that money
    was posted against? (The ledger stays append-only: RESTRICT, never SET NULL or CASCADE.)"""
    contract = gen_contract()
    with clock.as_of(date(2026, 8, 20)):
        ledger.payment(contract.id, Decimal("1000"), actor="test", external_id=f"seed-{contract.id}")
        account = gen_account(contract=contract, services=[gen_service("300.00")])
    run = charge(date(2026, 9, 1), actor="test")  # September, in advance: a ledger row of the run
    db.session.commit()
    entry = db.session.query(LedgerEntry).filter_by(charge_run_id=run.id).one()
    assert entry.kind == "charge" and entry.assigned_service_id is not None

    for statement in (delete(AssignedService).where(AssignedService.id == entry.assigned_service_id),
                      delete(ChargeRun).where(ChargeRun.id == run.id)):
        with pytest.raises(IntegrityError):
            db.session.execute(statement)
            db.session.flush()
        db.session.rollback()
    assert db.session.get(LedgerEntry, entry.id) is not None

    for model, row_id, values in ((Account, account.id, {"status": "frozen"}),
                                  (Account, account.id, {"block_reasons": 8}),
                                  (LedgerEntry, entry.id, {"reason": "because"}),
                                  (LedgerEntry, entry.id, {"kind": "gift"})):
        with pytest.raises(IntegrityError):
            db.session.query(model).filter_by(id=row_id).update(values)
            db.session.flush()
        db.session.rollback()
    db.session.add(Task(title="t", state="snoozed"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
