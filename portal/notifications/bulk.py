"""Bulk messages: staff write one text to a filtered list of subscribers (e.g. the debtors of
an agent), see the count and one recipient's message first, then send.

The list is the filters the staff lists already offer — agent, tariff, account status (an
account on the contract matches) and "balance below" (the contract's) — and it is a list of
*subscribers*: one ``bulk`` notice each, however many contracts match (the first matching
contract gives the message its contract number and balance). Sending is one INSERT … SELECT
into ``notices`` (``billing.notices.insert_from_select``), so ten thousand recipients cost one
statement; delivery, preferences and opt-out are the notices' (``delivery``), a bulk message
being non-critical. A bulk message row (who, when, text, filter, count) is keyed by the form's
one-time ``request_key`` and every notice by ``bulk:<message id>:<subscriber id>``: a double
click or a retry finds the message already sent and records nothing twice.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import JSON, String, cast, func, literal, select

from ..billing import audit
from ..billing.errors import BillingError
from ..billing.notices import insert_from_select
from ..db_setup import dialect_insert
from ..extensions import db
from ..models import ACCOUNT_STATUSES, Account, Agent, BulkMessage, Contract, Notice, Subscriber, Tariff, utcnow
from . import templates

TEXT_MAX = 2000
SUBJECT_MAX = 200
FILTERS = ("agent", "tariff", "status", "balance_below")
REQUEST_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the form's one-time key (secrets.token_hex)


@dataclass(frozen=True)
class Filters:
    agent: int | None = None
    tariff: int | None = None
    status: str | None = None
    balance_below: Decimal | None = None

    def as_dict(self) -> dict:
        """JSON-safe, for the bulk message's record."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items() if v is not None}


def parse_filters(raw: dict) -> Filters:
    """The list's filters from a form (texts); a BillingError naming each bad one."""
    errors: dict = {}
    values: dict = {}
    for name, model in (("agent", Agent), ("tariff", Tariff)):
        text = (raw.get(name) or "").strip()
        if text:
            if not (text.isdigit() and len(text) <= 9) or db.session.get(model, int(text)) is None:
                errors[name] = "not found"
            else:
                values[name] = int(text)
    status = (raw.get("status") or "").strip()
    if status:
        if status not in ACCOUNT_STATUSES:
            errors["status"] = "not a valid choice"
        else:
            values["status"] = status
    below = (raw.get("balance_below") or "").strip().replace(",", ".").replace(" ", "")
    if below:
        try:
            amount = Decimal(below)
            if not amount.is_finite() or amount.as_tuple().exponent < -2 or abs(amount) >= Decimal("1e12"):
                raise InvalidOperation
            values["balance_below"] = amount
        except InvalidOperation:
            errors["balance_below"] = "an amount with at most two decimal places"
    if errors:
        raise BillingError(errors)
    return Filters(**values)


def recipients(filters: Filters):
    """SELECT subscriber_id, contract_id: each subscriber the filters select once, with their
    first matching contract."""
    c = Contract.__table__.c
    where = []
    if filters.balance_below is not None:
        where.append(Contract.balance < filters.balance_below)
    a = Account.__table__.c
    on_account = [cond for cond in (
        a.agent_id == filters.agent if filters.agent is not None else None,
        a.tariff_id == filters.tariff if filters.tariff is not None else None,
        a.status == filters.status if filters.status is not None else None) if cond is not None]
    if on_account:
        where.append(c.id.in_(select(a.contract_id).where(*on_account)))
    return (select(c.subscriber_id.label("subscriber_id"), func.min(c.id).label("contract_id"))
            .where(*where).group_by(c.subscriber_id))


def count(filters: Filters) -> int:
    return db.session.scalar(select(func.count()).select_from(recipients(filters).subquery())) or 0


def check_message(subject: str, text: str) -> None:
    """The text is required; both are bounded, and valid templates over the subscriber's fields."""
    errors: dict = {}
    for field, value, limit in (("subject", subject, SUBJECT_MAX), ("text", text, TEXT_MAX)):
        if field == "subject" and not value:
            continue
        problems = templates.validate_bulk_text(value, field, limit)
        if problems:
            errors[field] = problems[0].message
    if errors:
        raise BillingError(errors)


@dataclass(frozen=True)
class Preview:
    count: int
    subscriber: Subscriber | None          # the recipient the preview is rendered for
    contract: Contract | None
    locale: str
    messages: dict                         # channel -> templates.Rendered


def preview(filters: Filters, subject: str, text: str) -> Preview:
    """The count and the message the first recipient (lowest id) would get on each channel."""
    check_message(subject, text)
    n = count(filters)
    first = db.session.execute(recipients(filters).order_by(Contract.__table__.c.subscriber_id).limit(1)).first()
    if first is None:
        return Preview(n, None, None, "ru", {})
    subscriber = db.session.get(Subscriber, first.subscriber_id)
    contract = db.session.get(Contract, first.contract_id)
    context = templates.context_for(subscriber, contract, {"subject": subject, "text": text})
    messages = {ch: templates.render("bulk", ch, subscriber.language, context) for ch in templates.CHANNELS}
    return Preview(n, subscriber, contract, subscriber.language, messages)


def send(filters: Filters, subject: str, text: str, *, actor: str, request_key: str) -> tuple[BulkMessage, bool]:
    """Record the bulk message and one ``bulk`` notice per recipient, in the caller's
    transaction. Returns (message, False) when ``request_key`` was sent before: nothing new."""
    check_message(subject, text)
    if not REQUEST_KEY.fullmatch(request_key or ""):
        raise BillingError({"request_key": "required"})
    table = BulkMessage.__table__
    new_id = db.session.execute(
        dialect_insert(table).values(request_key=request_key, subject=subject, text=text,
                                     filters=filters.as_dict(), recipients=0, created_by=actor,
                                     created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["request_key"]).returning(table.c.id)).scalar()
    if new_id is None:  # a double click, a retry, or the other of two parallel submits
        return db.session.scalars(select(BulkMessage).filter_by(request_key=request_key)).one(), False
    rows = recipients(filters).subquery()
    data = literal({"bulk_id": new_id, "subject": subject, "text": text}, type_=JSON)
    stmt = select(rows.c.subscriber_id, rows.c.contract_id, literal("bulk"), data, literal(False),
                  literal(f"bulk:{new_id}:") + cast(rows.c.subscriber_id, String),
                  literal(utcnow(), type_=Notice.__table__.c.created_at.type)).order_by(rows.c.subscriber_id)
    sent = insert_from_select(["subscriber_id", "contract_id", "event", "data", "critical", "dedup_key",
                               "created_at"], stmt)
    db.session.execute(table.update().where(table.c.id == new_id).values(recipients=sent))
    message = db.session.get(BulkMessage, new_id)
    audit.record(actor, "bulk_message.send", message, f"{sent}: {subject or text[:80]}",
                 after={"filters": filters.as_dict(), "recipients": sent})
    return message, True
