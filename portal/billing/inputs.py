"""The one strict reader of values people and systems type in: amounts, ids and text.

The admin and cabinet forms (through ``portal/web.py``), the API's marshmallow fields
(``portal/api/common.py``) and billing's own checks (``ledger.parse_amount``,
``directory._money``) all call these, so a value is accepted or refused the same way
everywhere, and a refusal is a ``BillingError`` naming the field, never an exception from
``decimal`` or the database driver.

* Amounts: an optional sign, at most ``AMOUNT_DIGITS`` digits before the point and
  ``AMOUNT_SCALE`` after it; spaces (also the no-break spaces Babel puts in "1 000,50") group
  digits, and a decimal comma is read as a point. No exponents, no NaN or infinity.
* Ids: whole numbers 1 … 2⁶³−1 (the largest BIGINT), in ASCII digits only: ``"²".isdigit()``
  is true, but ``int("²")`` fails.
* Text: no NUL (PostgreSQL cannot store it, and SQLite would keep it where PostgreSQL would
  not), at most as many characters as the column holds (``text_limit``), so the same value
  is refused on both databases instead of SQLite storing what PostgreSQL cuts short.
"""
from __future__ import annotations

import re
from decimal import Decimal

from .errors import BillingError

AMOUNT_DIGITS = 9  # below one billion: larger is "too large", as the ledger always said
AMOUNT_SCALE = 2
MAX_ID = 2**63 - 1
# a sign, digits, an optional fraction; anything longer than this is not an amount anyone types
_AMOUNT_RE = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")
_AMOUNT_MAX_TEXT = 64
_GROUPING = str.maketrans("", "", " \u00a0\u202f\u2009'")
_ID_RE = re.compile(r"[0-9]{1,19}")
# an API pattern that accepts exactly what parse_amount does in its canonical form
AMOUNT_PATTERN = rf"^-?[0-9]{{1,{AMOUNT_DIGITS}}}(\.[0-9]{{1,{AMOUNT_SCALE}}})?$"


def parse_amount(value, field: str = "amount") -> Decimal:
    """A money amount: Decimal with at most two places, |amount| below 10⁹, or BillingError."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise BillingError({field: "not a decimal number"})
        text = format(value, "f")  # never an exponent: Decimal("1E+2") -> "100"
    elif isinstance(value, (int, str)) and not isinstance(value, bool):
        text = str(value)
    else:
        raise BillingError({field: "not a decimal number"})
    text = text.strip().translate(_GROUPING).replace(",", ".")
    m = _AMOUNT_RE.fullmatch(text) if len(text) <= _AMOUNT_MAX_TEXT else None
    if m is None:
        raise BillingError({field: "not a decimal number"})
    sign, whole, fraction = m.group(1), m.group(2).lstrip("0") or "0", (m.group(3) or "").rstrip("0")
    if len(fraction) > AMOUNT_SCALE:
        raise BillingError({field: "at most two decimal places"})
    if len(whole) > AMOUNT_DIGITS:
        raise BillingError({field: "too large"})
    return Decimal(f"{'-' if sign == '-' else ''}{whole}.{fraction or '0'}").quantize(Decimal("0.01"))


def parse_id(value, field: str, maximum: int = MAX_ID) -> int:
    """An id: an int (or its ASCII digits) from 1 to ``maximum``, or BillingError."""
    if isinstance(value, str):
        value = value.strip()
        if not _ID_RE.fullmatch(value):
            raise BillingError({field: "must be an integer"})
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BillingError({field: "must be an integer"})
    if not 1 <= value <= maximum:
        raise BillingError({field: "not found"})
    return value


def id_or_raw(value, maximum: int = MAX_ID):
    """For forms: the id as an int when it is one in range, the raw text otherwise, so that the
    billing check that follows names the field ("not found", "must be an integer")."""
    try:
        return parse_id(value, "_", maximum)
    except BillingError:
        return value


def check_text(value, field: str, max_len: int | None) -> list[str]:
    """What is wrong with a text value (empty when nothing): NUL characters, over-long."""
    if not isinstance(value, str):
        return ["must be text"]
    problems = []
    if "\x00" in value:
        problems.append("must not contain NUL characters")
    if max_len is not None and len(value) > max_len:
        problems.append(f"text up to {max_len} characters")
    return problems


def parse_text(value, field: str, max_len: int | None) -> str:
    """The text, or BillingError naming the field."""
    problems = check_text(value, field, max_len)
    if problems:
        raise BillingError({field: problems[0]})
    return value


def text_limit(column) -> int | None:
    """The length a String column holds (None for unbounded Text), read from the model."""
    return getattr(column.type, "length", None)


def unsafe_redirect_target(value: str | None) -> bool:
    """A `next`/`back` parameter with control characters (CR/LF would split the Location
    header) is refused rather than followed or cleaned."""
    return bool(value) and any(ord(c) < 32 or ord(c) == 127 for c in value)
