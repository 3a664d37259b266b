"""The money hot paths' fixed statements, run by the driver itself on PostgreSQL.

A statement a payment runs on every call is built once per process (``functools.cache``) and,
here, compiled once too: its SQL text, the values of its literal parameters, the bind
processors of its typed parameters (``Money`` to kopecks, ``UTCDateTime``, JSON) and the result
processors of its columns. ``rows`` then hands psycopg the text and the processed values, in the
session's connection and transaction, as ``db_setup.driver_first`` does for the row-version
checks: SQLAlchemy's execution around a statement (the execution context, the result object,
the cursor's column description it reads, a few hundred Python calls) cost as much CPU as the
driver's own work, on each of a pay's statements. What the database receives is the same text
with the same values (psycopg still prepares a statement it has seen often enough).

Errors come out as SQLAlchemy's, a lost connection invalidated, as from ``session.execute``;
the engine's ``before_cursor_execute`` listeners (statement counters, tests) and its echo are
served as for any statement. Elsewhere (SQLite) ``rows`` is ``session.execute(...).all()``.
"""
from __future__ import annotations

from sqlalchemy import exc

from ..extensions import db

_compiled: dict[int, list] = {}
_UNKNOWN = object()  # result processors not known yet


def _compile(stmt, dialect) -> list:
    compiled = stmt.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("driver_sql: expanding or literal-execute parameters are re-rendered per execution")
    defaults = compiled.construct_params(_check=False)
    binds = tuple((name, proc) for name, proc in compiled._bind_processors.items() if proc is not None)
    # the result processors wait for the first result: some depend on the column's type as the
    # server reports it (a numeric's)
    # the parameters without a value of their own: a call must give each (construct_params above
    # fills a missing one with None, which would write NULL where SQLite and session.execute refuse)
    required = frozenset(name for name, bind in compiled.binds.items() if bind.required)
    entry = [stmt, dialect, compiled.string, defaults, binds, _UNKNOWN, [col[3] for col in compiled._result_columns],
             required]
    _compiled[id(stmt)] = entry
    return entry


def _result_processors(entry: list, dialect, result) -> tuple | None:
    types = entry[6]
    processors = tuple(types[i]._cached_result_processor(dialect, result.ftype(i)) if i < len(types) else None
                       for i in range(result.nfields))
    entry[5] = processors if any(processors) else None
    return entry[5]


def rows(stmt, params: dict) -> list[tuple]:
    """The rows of ``stmt`` (a statement built once per process: it is compiled on its first
    run) with ``params``, as tuples with the columns' Python types."""
    session = db.session()
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        result = session.execute(stmt, params)
        return [tuple(r) for r in result] if result.returns_rows else []
    entry = _compiled.get(id(stmt))
    if entry is None or entry[0] is not stmt or entry[1] is not dialect:
        entry = _compile(stmt, dialect)
    _, _, sql, defaults, binds, results, _, required = entry
    if not required <= params.keys():
        missing = ", ".join(sorted(required - params.keys()))
        raise exc.StatementError(f"A value is required for bind parameter(s) {missing}", sql, params, None)
    session._autoflush()  # as session.execute does for a statement over mapped entities
    values = {**defaults, **params}
    for name, proc in binds:
        values[name] = proc(values[name])
    events = conn._has_events or conn.engine._has_events
    if events:
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, None, sql, values, None, False)
    if conn._echo:
        conn._log_info(sql)
    try:
        cursor = conn.connection.driver_connection.execute(sql, values)
        result = cursor.pgresult
        out = cursor.fetchall() if result is not None and result.nfields else []
    except Exception as e:  # noqa: BLE001  (wrapped and raised as SQLAlchemy's, like any statement's)
        conn._handle_dbapi_exception(e, sql, values, None, None)
    if events:  # (statement timers pair it with the before_cursor_execute above)
        for listener in conn.dispatch.after_cursor_execute:
            listener(conn, cursor, sql, values, None, False)
    if results is _UNKNOWN and out:
        results = _result_processors(entry, dialect, result)
    if results is not None and out:
        out = [tuple(v if p is None else p(v) for p, v in zip(results, r)) for r in out]
    return out
