"""Engine tuning and schema helpers shared by the app, the CLI and the tests."""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine


def dialect_insert(table):
    """INSERT with ON CONFLICT support for the database in use (PostgreSQL or SQLite)."""
    from .extensions import db

    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def driver_first(sql: str, params: dict):
    """The first row (a tuple) of a small fixed query, sent by the driver of the session's
    connection, in its transaction. For the checks every hot-path request makes (a platform
    connection's row version): SQLAlchemy's ``exec_driver_sql`` costs ~200 Python calls around
    the query, psycopg's own ``execute`` ~30. Errors come out as SQLAlchemy's, a lost connection
    invalidated, exactly as from ``session.execute``. ``sql`` uses the driver's placeholders."""
    from .extensions import db

    conn = db.session.connection()
    raw = conn.connection.driver_connection
    try:
        return raw.execute(sql, params).fetchone()
    except Exception as e:  # noqa: BLE001  (wrapped and raised as SQLAlchemy's, like any statement's)
        conn._handle_dbapi_exception(e, sql, params, None, None)


def reset_schema(db) -> None:
    """An empty schema with every table of the models (tests, benchmarks). PostgreSQL drops the
    whole schema: tables another version of the code left (another branch, an earlier run on
    this database) may depend on ours, and drop_all would fail on them."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    else:
        db.drop_all()
    db.create_all()


def _cache_long_statements() -> None:
    """psycopg parses a query's placeholders again on every execution when its text is over
    4 kB or it has over 50 parameters (it caches only smaller ones, to keep ORM-generated
    multi-row INSERTs out of its cache). Ours past those limits are few, fixed texts run on
    every charge (the charge statement: 7.5 kB; parsing it cost more CPU than the rest of an
    upsale commit's statements): cache them too. The cache stays an LRU of 128 entries."""
    try:
        from psycopg import _queries
    except ImportError:  # another driver
        return
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 16384)
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 100)


class _Description:
    """``cursor.description`` built on demand: psycopg builds a Column object per column on every
    access (~3 µs each), and SQLAlchemy reads the description of every result only to see that
    there is one when the statement's result metadata is cached (every statement of the hot
    paths: an upsale pair's results had 130 columns). Columns are made from the result they
    describe, when indexed or iterated."""

    __slots__ = ("_result", "_encoding", "_adapters", "_columns")

    def __init__(self, cursor):
        self._result, self._encoding, self._adapters = cursor.pgresult, cursor._encoding, cursor.adapters
        self._columns = None

    @property
    def pgresult(self):  # what psycopg's Column reads from "its cursor"
        return self._result

    @property
    def adapters(self):
        return self._adapters

    def _all(self) -> list:
        if self._columns is None:
            from psycopg import Column
            self._columns = [Column(self, i) for i in range(self._result.nfields)]
        return self._columns

    def __len__(self) -> int:
        return self._result.nfields

    def __getitem__(self, index):
        return self._all()[index]

    def __iter__(self):
        return iter(self._all())

    def __eq__(self, other):
        return self._all() == (other._all() if isinstance(other, _Description) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._all())


def _lazy_description_cursor():
    """psycopg's cursor with ``_Description`` as its description (same answer, None included)."""
    import psycopg
    from psycopg import pq

    tuples = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK)

    class Cursor(psycopg.Cursor):
        __slots__ = ()

        @property
        def description(self):
            res = self.pgresult
            if res and (res.nfields or res.status in tuples):
                return _Description(self)
            return None

    return Cursor


def _use_lazy_description(dbapi_conn, _record) -> None:
    global _cursor_class
    if _cursor_class is None:
        _cursor_class = _lazy_description_cursor()
    import psycopg

    if dbapi_conn.cursor_factory is psycopg.Cursor:  # a connection set up otherwise is left alone
        dbapi_conn.cursor_factory = _cursor_class


_cursor_class = None


def _check_idle_socket(dbapi_conn, _record, _proxy) -> None:
    """A pooled PostgreSQL connection is checked on checkout without a round trip (what
    ``pool_pre_ping`` costs on every request): an idle connection has nothing to read, so a
    readable socket means the server wrote to it meanwhile, which for a connection nobody is
    using is its goodbye (a restart, pg_terminate_backend, idle timeouts): the pool then opens
    a new one (DisconnectionError). A connection that breaks in the middle of a request fails
    that request, and the pool drops every connection opened before it (SQLAlchemy's
    invalidation), so the next requests start on fresh ones."""
    import select

    from sqlalchemy import exc

    try:
        fd = dbapi_conn.fileno()
        readable = select.select([fd], [], [], 0)[0]
    except (OSError, ValueError, Exception) as e:  # noqa: BLE001  (a closed connection has no socket)
        raise exc.DisconnectionError(f"connection unusable: {e}") from e
    if readable or dbapi_conn.closed:
        raise exc.DisconnectionError("the server closed the connection while it was idle in the pool")


def configure_engine(engine: Engine) -> None:
    """PostgreSQL: pooled connections checked on checkout by their socket (_check_idle_socket).
    SQLite: WAL, a busy timeout and foreign keys, because web and worker write at once.

    pysqlite's own transaction handling is kept (a transaction opens at the first write), so
    a writer takes the write lock before it has read anything in its transaction and waits on
    the busy timeout instead of failing on a stale snapshot.
    """
    if engine.dialect.name == "postgresql":
        _cache_long_statements()
        if not getattr(engine, "_portal_cursor", False) and engine.dialect.driver == "psycopg":
            engine._portal_cursor = True
            event.listen(engine, "connect", _use_lazy_description)
        if not engine.pool._pre_ping and not getattr(engine, "_portal_checked", False):
            engine._portal_checked = True
            event.listen(engine.pool, "checkout", _check_idle_socket)
    if engine.dialect.name != "sqlite" or getattr(engine, "_portal_configured", False):
        return
    engine._portal_configured = True

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        # SQLite's lower() knows only ASCII; searches must fold Cyrillic too
        dbapi_conn.create_function("lower", 1, lambda s: s.lower() if isinstance(s, str) else s,
                                   deterministic=True)
        # the charge run counts the days in a bit mask (PostgreSQL has bit_count built in)
        dbapi_conn.create_function("bit_count", 1, lambda x: None if x is None else bin(x).count("1"),
                                   deterministic=True)


def include_object_for(dialect_name: str):
    """An Alembic ``include_object`` hook for a database of ``dialect_name``: leave out the
    model indexes declared for other dialects only (``Index(...).ddl_if(dialect=...)``, e.g.
    the PostgreSQL trigram indexes), which ``db.create_all()`` skips there too. Autogenerate
    does not read ``ddl_if`` by itself, so without this it would ask SQLite for GIN indexes."""
    def include_object(obj, name, type_, reflected, compare_to):
        ddl_if = getattr(obj, "_ddl_if", None) if type_ == "index" else None
        if ddl_if is not None and ddl_if.dialect is not None:
            dialects = (ddl_if.dialect,) if isinstance(ddl_if.dialect, str) else tuple(ddl_if.dialect)
            return dialect_name in dialects
        return True
    return include_object
