"""Migration 2b13d1c3e5f6 (issue 13, item 5): plans imported before keep working."""
from __future__ import annotations

from sqlalchemy import create_engine, text

from portal.config import normalize_db_url
from tests.helpers import flask_db, scratch_database

BEFORE = "1a13c0b2d4e5"


def test_plans_imported_before_keep_their_tariffs_and_wait_for_a_resync_for_packages(app, tmp_path):
    """A tariff imported from plan 9003 before the upgrade: is it still bound to plan «9003»
    afterwards (as text), its packages unknown until staff re-sync it, and does a downgrade
    give the old table back?"""
    url = scratch_database("stalker_catalog_migration", tmp_path)
    flask_db(url, "upgrade", BEFORE, check=True)
    engine = create_engine(normalize_db_url(url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tariffs (id, name, kind, monthly_fee, is_multi) "
                          "VALUES (9003, 'Максимальный', 'services', 0, false)"))
        conn.execute(text("INSERT INTO stalker_imported_tariffs (tariff_id, plan_name, imported_at) "
                          "VALUES (9003, 'Максимальный', CURRENT_TIMESTAMP)"))
    flask_db(url, "upgrade", "2b13d1c3e5f6", check=True)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT tariff_id, plan_external_id, packages_known "
                                "FROM stalker_imported_tariffs")).one()
        packages = conn.execute(text("SELECT count(*) FROM stalker_plan_packages")).scalar()
    assert (row[0], row[1], bool(row[2]), packages) == (9003, "9003", False, 0)
    flask_db(url, "downgrade", BEFORE, check=True)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT tariff_id, plan_name FROM stalker_imported_tariffs")).one() == \
            (9003, "Максимальный")
    engine.dispose()
