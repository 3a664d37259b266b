"""The hot paths' statements run by the driver (portal.billing.driver_sql, PostgreSQL; SQLite
through the session): the same values reach the database and come back as through SQLAlchemy,
errors are SQLAlchemy's, pending objects are flushed first, and statement listeners see them."""
from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import JSON, bindparam, event, exc, func, literal, select

from portal.billing import driver_sql
from portal.extensions import db
from portal.models import AuditEntry
from portal.models.base import Money, UTCDateTime

POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")

_TYPED = select(bindparam("m", type_=Money()), bindparam("t", type_=UTCDateTime()),
                bindparam("j", type_=JSON()), literal(Decimal("12.34"), Money()), bindparam("s"))


def test_typed_values_go_and_come_back_as_through_sqlalchemy(ctx):
    """Money in kopecks and back, a naive time as UTC, JSON (None as JSON null), a literal."""
    params = {"m": Decimal("498.06"), "t": datetime(2026, 1, 31, 23, 50), "j": {"a": [1, "б"]}, "s": "текст"}
    ours = driver_sql.rows(_TYPED, params)
    assert ours == [tuple(db.session.execute(_TYPED, params).one())]
    money, at, data, fixed, text = ours[0]
    assert (money, fixed, text) == (Decimal("498.06"), Decimal("12.34"), "текст")
    assert at.utcoffset() is not None and at.replace(tzinfo=None) == datetime(2026, 1, 31, 23, 50)
    assert data == {"a": [1, "б"]}
    null = driver_sql.rows(select(bindparam("j", type_=JSON())), {"j": None})
    assert null == [tuple(db.session.execute(select(bindparam("j", type_=JSON())), {"j": None}).one())]


def test_pending_objects_are_flushed_first_and_a_write_is_in_the_sessions_transaction(ctx):
    before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    db.session.add(AuditEntry(at=datetime(2026, 1, 1), actor="t", action="x.y", object_type="system",
                              summary="pending"))
    counted = driver_sql.rows(select(func.count()).select_from(AuditEntry.__table__), {})
    assert counted == [(before + 1,)]  # the pending entry was flushed, as session.execute does
    insert = AuditEntry.__table__.insert().values(
        at=bindparam("at", type_=UTCDateTime()), actor=bindparam("actor"), action=literal("x.z"),
        object_type=literal("system"), summary=literal("by the driver"), before=bindparam("before", type_=JSON()))
    driver_sql.rows(insert, {"at": datetime(2026, 1, 2), "actor": "t", "before": None})
    row = db.session.scalars(select(AuditEntry).where(AuditEntry.summary == "by the driver")).one()
    assert (row.actor, row.action, row.at.replace(tzinfo=None), row.before) == ("t", "x.z", datetime(2026, 1, 2), None)
    db.session.rollback()  # one transaction: both entries go with it
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_errors_are_sqlalchemys_and_listeners_see_the_statement(ctx):
    seen = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert driver_sql.rows(select(literal(1) + bindparam("n")), {"n": 41}) == [(42,)]
        assert seen and "SELECT" in seen[-1]
        with pytest.raises(exc.DBAPIError):
            driver_sql.rows(select(literal(1) / bindparam("zero")), {"zero": 0}) if POSTGRES else \
                driver_sql.rows(select(func.no_such_function()), {})
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    db.session.rollback()
    assert driver_sql.rows(select(literal(7)), {}) == [(7,)]


@pytest.mark.skipif(not POSTGRES, reason="SQLite runs through session.execute")
def test_a_statement_that_would_be_rendered_again_at_each_execution_is_refused(ctx):
    with pytest.raises(ValueError):
        driver_sql.rows(select(literal(1)).where(literal(1).in_([1, 2])), {})


def test_a_forgotten_parameter_is_an_error_on_both_databases(ctx):
    """A parameter without a value of its own that the call does not give is refused, as
    session.execute refuses it, instead of being written as NULL; nothing is written."""
    insert = AuditEntry.__table__.insert().values(
        at=bindparam("at", type_=UTCDateTime()), actor=bindparam("actor"), action=literal("x.forgot"),
        object_type=literal("system"), summary=literal("forgotten"), object_id=bindparam("object_id"))
    with pytest.raises(exc.StatementError, match="object_id"):
        driver_sql.rows(insert, {"at": datetime(2026, 1, 3), "actor": "t"})
    db.session.rollback()
    assert not db.session.scalars(select(AuditEntry).where(AuditEntry.action == "x.forgot")).all()


def test_statement_timers_see_each_statement_begin_and_end(ctx):
    """before_cursor_execute and after_cursor_execute both fire (bench timers pair them)."""
    seen = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(("before", statement))

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append(("after", statement))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        stmt = select(literal(2) + bindparam("n"))
        assert driver_sql.rows(stmt, {"n": 3}) == [(5,)]
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    assert [kind for kind, _ in seen] == ["before", "after"] and seen[0][1] == seen[1][1]
