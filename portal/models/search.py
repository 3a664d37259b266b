"""How staff find people as they call in: one folded text per subscriber and per account,
kept by the models themselves (whoever writes a card), matched word by word.

Folding: lower case, ё as е, a phone as its digits with the trunk prefix 8 read as 7
(+7 912 345-67-89, 8 (912) 345-67-89 and 79123456789 are one number), so "Петр" finds
"Пётр", "345-67" and "89123456789" find the phone, and an address's flat reads "кв. 2"."""
from __future__ import annotations

import re

from sqlalchemy import and_, event

_NON_DIGITS = re.compile(r"\D")
_PHONE_LIKE = re.compile(r"^[\d\s()+\-.]+$")


def fold(text: str | None) -> str:
    return (text or "").lower().replace("ё", "е").strip()


def phone_digits(raw: str | None) -> str:
    digits = _NON_DIGITS.sub("", raw or "")
    if len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    elif len(digits) == 10 and digits[0] == "9":  # a Russian mobile without its country code
        digits = "7" + digits
    return digits


def subscriber_text(s) -> str:
    parts = [fold(s.full_name), fold(s.email), fold(s.cabinet_login), fold(s.postal_address)]
    parts += [phone_digits(p) for p in (s.phones or []) if isinstance(p, str)]
    return " ".join(p for p in parts if p)


def account_text(a) -> str:
    address = ", ".join(p for p in (fold(a.house), f"кв. {fold(a.flat)}" if a.flat else "") if p)
    return " ".join(p for p in (fold(a.login), address) if p)


def terms(q: str | None) -> list[str]:
    """What a query looks for: a phone-like query is one number (its digits), anything else
    is its words, each to be found (in any order)."""
    q = (q or "").strip()
    if not q:
        return []
    if _PHONE_LIKE.match(q) and sum(c.isdigit() for c in q) >= 3:
        return [phone_digits(q)]
    return [w for w in fold(q).split() if w]


def matches(column, q: str | None):
    """A condition: ``column`` (a folded search text) holds every term of ``q``."""
    found = terms(q)
    return and_(*(column.contains(t, autoescape=True) for t in found)) if found else None


def _keep(model, build) -> None:
    @event.listens_for(model, "before_insert")
    @event.listens_for(model, "before_update")
    def _set(_mapper, _connection, target):
        target.search_text = build(target)


def install() -> None:
    """Keep ``search_text`` of subscribers and accounts in step with their fields."""
    from .accounts import Account
    from .subscribers import Subscriber

    _keep(Subscriber, subscriber_text)
    _keep(Account, account_text)
