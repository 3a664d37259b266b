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
    # the same without a sign (zero or more), and above zero (not all zeros either)
    NOT_NEGATIVE = "^" + AMOUNT_PATTERN.removeprefix("^-?")
    POSITIVE = r"^(?!0*(\.0*)?$)" + AMOUNT_PATTERN.removeprefix("^-?")

    # a sum (a balance) in an answer: any number of digits
    SUM = r"^-?[0-9]+\.[0-9]{2}$"

    def __init__(self, positive: bool = False, not_negative: bool = False, sum: bool = False, **kwargs):
        self.pattern = (self.POSITIVE if positive else self.NOT_NEGATIVE if not_negative
                        else self.SUM if sum else self.PATTERN)
        metadata = {"type": "string", "pattern": self.pattern, "example": "300.00", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{value:.2f}"

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(self.PATTERN, value):
            raise ValidationError('a decimal string with at most two places, e.g. "300.00"')
        if not re.fullmatch(self.pattern, value):  # an amount, on the wrong side of zero
            raise ValidationError("must be positive" if self.pattern == self.POSITIVE else "must not be negative")
        return value


class Text(fields.String):
    """A string without NUL characters, which PostgreSQL cannot store or even compare (the
    same check as the forms', billing/inputs.check_text). The document says so with a pattern,
    unless the field has a pattern of its own (which then excludes NUL itself)."""

    def __init__(self, *args, **kwargs):
        validators = kwargs.get("validate") or []
        validators = validators if isinstance(validators, (list, tuple)) else [validators]
        if not any(isinstance(v, validate.Regexp) for v in validators):
            kwargs["metadata"] = {"pattern": NO_NUL, **kwargs.get("metadata", {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        problems = check_text(value, attr, None)
        if problems:
            raise ValidationError(problems[0])
        return value


def Id(**kwargs) -> fields.Integer:  # noqa: N802  (reads like a field class)
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


def Name(column, **kwargs) -> Text:  # noqa: N802  (reads like a field class)
    """A name: up to the column's length, not blank (billing strips it and requires the rest)."""
    return Text(validate=[validate.Length(max=max_len(column)), validate.Regexp(NOT_BLANK)], **kwargs)


# What str.strip() removes (billing strips names), spelled out: \s differs between Python's re
# and the ECMA regular expressions of a JSON Schema (\x1c-\x1f are space only to Python).
SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = rf"^[{SPACE}]*[^\x00{SPACE}][^\x00]*$"  # linear: no nested repetition


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


def Platform(**kwargs) -> Text:  # noqa: N802  (reads like a field class)
    """A registered platform's name, or null: the names are listed in the document."""
    from ..platforms.registry import known_platforms

    return Text(allow_none=True, validate=validate.OneOf(list(known_platforms())), **kwargs)


def document_write_rules(spec) -> None:
    """What every PATCH enforces beyond its fields, stated in the OpenAPI document: its body
    names at least one field (an empty one is 422: errors.refuse_bodyless_patch). (A 409 from
    any write is covered by the documented default error answer.)"""
    schemas = spec.components.schemas
    for operations in spec._paths.values():
        operation = operations.get("patch") if isinstance(operations, dict) else None
        if not isinstance(operation, dict):
            continue
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        name = body.get("$ref", "").rsplit("/", 1)[-1] if isinstance(body, dict) else ""
        if isinstance(schemas.get(name), dict):
            schemas[name]["minProperties"] = 1
