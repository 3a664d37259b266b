"""SQL fragments that PostgreSQL and SQLite spell differently, for billing's set-based
statements (the grace and freeze notices, the forecast's warnings): one definition of each, so
that a notice's date or amount reads the same whichever statement wrote it.

* ``add_days(d, n)``: date + n days.
* ``iso_date(d)``: a date as 'YYYY-MM-DD' text.
* ``amount_text(minor)``: kopecks as the amount's text with two places ('498.06', '-5.00').
* ``json_object(k, v, ...)``: a JSON object (a notice's data); ``json_true(dialect)``,
  ``json_false(dialect)``: a JSON boolean inside it.

Each is a ``GenericFunction`` with a registry name of its own (``sqlfrag_*``), compiled per
dialect, so statements built with them are cached by SQLAlchemy like any other.
"""
from __future__ import annotations

from sqlalchemy import Date, String, false, func, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction


class add_days(GenericFunction):  # noqa: N801  (SQL function name)
    """date + n days."""

    identifier = "sqlfrag_add_days"
    type = Date()
    inherit_cache = True


@compiles(add_days, "postgresql")
def _add_days_pg(element, compiler, **kw):
    d, n = list(element.clauses)
    return f"({compiler.process(d, **kw)} + CAST({compiler.process(n, **kw)} AS INTEGER))"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element, compiler, **kw):
    d, n = list(element.clauses)
    return f"date({compiler.process(d, **kw)}, '+' || ({compiler.process(n, **kw)}) || ' days')"


class iso_date(GenericFunction):  # noqa: N801
    """A date as 'YYYY-MM-DD' text."""

    identifier = "sqlfrag_iso_date"
    type = String()
    inherit_cache = True


@compiles(iso_date, "postgresql")
def _iso_pg(element, compiler, **kw):
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD')"


@compiles(iso_date, "sqlite")
def _iso_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)})"


class amount_text(GenericFunction):  # noqa: N801
    """Kopecks (an integer, any sign) as the amount's text with two places: '498.06', '-5.00'."""

    identifier = "sqlfrag_amount_text"
    type = String()
    inherit_cache = True


@compiles(amount_text, "postgresql")
def _amount_pg(element, compiler, **kw):
    return f"CAST(ROUND(CAST({compiler.process(element.clauses, **kw)} AS NUMERIC) / 100, 2) AS TEXT)"


@compiles(amount_text, "sqlite")
def _amount_sqlite(element, compiler, **kw):
    # exact: an integer of kopecks / 100.0 is the nearest double to the two-place decimal
    return f"printf('%.2f', ({compiler.process(element.clauses, **kw)}) / 100.0)"


class json_object(GenericFunction):  # noqa: N801
    """A JSON object from key, value, ... pairs."""

    identifier = "sqlfrag_json_object"
    type = String()
    inherit_cache = True


@compiles(json_object, "postgresql")
def _json_pg(element, compiler, **kw):
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "sqlite")
def _json_sqlite(element, compiler, **kw):
    return f"json_object({compiler.process(element.clauses, **kw)})"


def json_true(dialect: str):
    """JSON true inside ``json_object`` (SQLite has no boolean: json('true'))."""
    return true() if dialect == "postgresql" else func.json("true")


def json_false(dialect: str):
    return false() if dialect == "postgresql" else func.json("false")
