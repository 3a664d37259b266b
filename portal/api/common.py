"""What every API v1 resource shares: field types, request bodies that report every bad
field, and keyset pagination with ``?q=`` search.

Pagination is keyset on the primary key: ``?after=<id>&limit=<n>`` reads the next ``n`` rows
with ``id > after`` through the primary key index and answers ``{"items": [...],
"next_after": <last id, or null on the last page>}``; no COUNT(*), so a page costs the same
at row 50 and at row 1,000,000. ``?q=`` is a case-insensitive substring match on a few
columns; it cannot use a b-tree index, but with ``ORDER BY id LIMIT n`` the scan stops as
soon as a page is full.
"""
from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import ValidationError, fields, validate

from ..billing.inputs import AMOUNT_PATTERN, check_text
from .errors import SCHEMA_ERRORS, flatten

# Primary keys are 32-bit integers on PostgreSQL (64-bit for the ledger); a larger id cannot
# exist and cannot even be bound as a parameter there, so ids are bounded where they come in.
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1
ID_PATH = f"int(min=1, max={MAX_ID})"


def max_len(column) -> int:
    """The length of a String column: the schema takes its limits from the model."""
    return column.type.length


class Money(fields.Field):
    """An amount as a decimal string both ways ("300.00"): JSON numbers are floats, money is not.

    Loading checks the form only and hands the string on; the billing layer parses it and
    decides what amounts it accepts.
    """

    PATTERN = AMOUNT_PATTERN  # what billing/inputs.parse_amount accepts, in its canonical form

    def __init__(self, **kwargs):
        metadata = {"type": "string", "pattern": self.PATTERN, "example": "300.00", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{value:.2f}"

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(self.PATTERN, value):
            raise ValidationError('a decimal string with at most two places, e.g. "300.00"')
        return value


class Text(fields.String):
    """A string without NUL characters, which PostgreSQL cannot store or even compare (the
    same check as the forms', billing/inputs.check_text)."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        problems = check_text(value, attr, None)
        if problems:
            raise ValidationError(problems[0])
        return value


def Id(**kwargs) -> fields.Integer:  # noqa: N802  (reads like a field class)
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


class IdOnly(ma.Schema):
    """For lists of related ids: fields.Pluck(IdOnly, "id", many=True, attribute=...)."""

    id = fields.Integer()


class Body(ma.Schema):
    """A JSON request body that does not stop at its own errors.

    Instead of raising, ``load`` returns what did load plus the schema's messages under
    SCHEMA_ERRORS; the view then runs billing on the loaded part inside ``committing``, which
    answers one 422 naming the fields that either of them found bad, and writes nothing.
    """

    def load(self, data, *, many=None, partial=None, unknown=None):
        try:
            return super().load(data, many=many, partial=partial, unknown=unknown)
        except ValidationError as e:
            valid = e.valid_data if isinstance(e.valid_data, dict) else {}
            return {**valid, SCHEMA_ERRORS: flatten(e.messages)}


class ListArgs(ma.Schema):
    q = Text(validate=validate.Length(max=100), metadata={"description": "search text"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200), metadata={"description": "page size"})
    after = fields.Integer(validate=validate.Range(0, MAX_ID),
                           metadata={"description": "the `next_after` of the previous page"})


_pages: dict[type, type] = {}


def page_of(item_schema: type) -> type:
    """The schema of a page of ``item_schema``: {"items": [...], "next_after": id | null}."""
    if item_schema not in _pages:
        name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
        _pages[item_schema] = ma.Schema.from_dict({
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_after": fields.Integer(required=True, allow_none=True,
                                         metadata={"description": "pass as ?after= for the next page; "
                                                                  "null on the last page"}),
        }, name=name)
    return _pages[item_schema]
