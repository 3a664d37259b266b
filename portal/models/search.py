"""How staff find people as they call in: one folded text per subscriber and per account,
kept by the models themselves (whoever writes a card), matched word by word.

Folding: lower case, ё as е, a phone as its digits with the trunk prefix 8 read as 7
(+7 912 345-67-89, 8 (912) 345-67-89 and 79123456789 are one number), so "Петр" finds
"Пётр", "345-67" and "89123456789" find the phone, and an address's flat reads "кв. 2".

A contract keeps its own: its number and its subscriber's text (``contract_text``), so that the
contracts and payments lists find a contract by its holder's name or phone from the contracts
table alone (at a million rows, reading each walked contract's subscriber was 0.1-0.4 s of a
search). Saving a subscriber rewrites their contracts' texts in the same flush."""
from __future__ import annotations

import re

from sqlalchemy import and_, event, inspect, select
from sqlalchemy.orm.attributes import set_committed_value

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


def contract_text(number: str | None, person_text: str | None) -> str:
    """A contract's search text: its number, then its subscriber's (``subscriber_text``)."""
    return " ".join(p for p in (fold(number), person_text or "") if p)


def terms(q: str | None) -> list[str]:
    """What a query looks for: a phone-like query is one number (its digits), anything else
    is its words, each to be found (in any order)."""
    q = (q or "").strip()
    if not q:
        return []
    if _PHONE_LIKE.match(q) and sum(c.isdigit() for c in q) >= 3:
        return [phone_digits(q)]
    words = list(dict.fromkeys(w for w in fold(q).split() if w))
    # H7: a word inside another word of the query is found wherever that one is ("петр" in
    # "петрович"), so it is no condition of its own: the same rows, and the planner does not
    # multiply two correlated selectivities (it expected 5 rows of «петр петрович» where 24,000
    # at 1M hold both, and sorted them all instead of walking the newest)
    return [w for w in words if not any(w != other and w in other for other in words)]


def matches(column, q: str | None):
    """A condition: ``column`` (a folded search text) holds every term of ``q``."""
    found = terms(q)
    return and_(*(column.contains(t, autoescape=True) for t in found)) if found else None


def _keep(model, build) -> None:
    @event.listens_for(model, "before_insert")
    @event.listens_for(model, "before_update")
    def _set(_mapper, _connection, target):
        target.search_text = build(target)


def _keep_contracts(subscriber_model, contract_model) -> None:
    """H3: a contract's text from its number and its subscriber's stored text (read in the
    flush: the subscriber's row is written before its contracts'), and a subscriber whose text
    changed rewrites their contracts' texts on the same connection (the same transaction)."""
    contracts, people = contract_model.__table__, subscriber_model.__table__

    def person(connection, subscriber_id) -> str:
        return connection.scalar(select(people.c.search_text).where(people.c.id == subscriber_id)) or ""

    @event.listens_for(contract_model, "before_insert")
    def _new(_mapper, connection, target):
        target.search_text = contract_text(target.number, person(connection, target.subscriber_id))

    @event.listens_for(contract_model, "before_update")
    def _changed(_mapper, connection, target):
        attrs = inspect(target).attrs
        if attrs.number.history.has_changes() or attrs.subscriber_id.history.has_changes():
            target.search_text = contract_text(target.number, person(connection, target.subscriber_id))

    @event.listens_for(subscriber_model, "after_update")
    def _holder(_mapper, connection, target):
        if not inspect(target).attrs.search_text.history.has_changes():
            return
        rows = connection.execute(select(contracts.c.id, contracts.c.number)
                                  .where(contracts.c.subscriber_id == target.id)).all()
        texts = {r.id: contract_text(r.number, target.search_text) for r in rows}
        for cid, text in texts.items():
            connection.execute(contracts.update().where(contracts.c.id == cid).values(search_text=text))
        for c in target.__dict__.get("contracts") or []:  # (the loaded ones say so too)
            if c.id in texts:
                set_committed_value(c, "search_text", texts[c.id])


def install() -> None:
    """Keep ``search_text`` of subscribers, accounts and contracts in step with their fields."""
    from .accounts import Account
    from .subscribers import Contract, Subscriber

    _keep(Subscriber, subscriber_text)
    _keep(Account, account_text)
    _keep_contracts(Subscriber, Contract)
