"""API v1 payments from operators' systems. ``external_id`` is the payment's id in the
sender's system and makes a retry harmless: the same id again answers the first payment
(200 instead of 201) and moves no money; the same id with another contract or amount is a
409 naming ``external_id`` (portal.billing.ledger.payment).

``source`` says where the money came from as the sender knows it (its own cash desks, a bank
statement it processed, a payment agent), "api" when not given. Not "online": in the portal an
online payment is one the ЮKassa read-back confirmed, which staff see and re-check with its
state (portal/billing/online_payments.py); a sender's own online acquiring posts as "api"."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import validate

from ..billing import ledger
from ..models import LedgerEntry
from ..models.ledger import PAYMENT_AGENT, PAYMENT_API, PAYMENT_CASH, PAYMENT_STATEMENT
from .auth import actor, managers_only
from .common import Body, Id, Money, Text, max_len
from .contracts import LedgerEntrySchema
from .errors import committing

bp = Blueprint("payments", __name__, url_prefix="/api/v1/payments", description="Payments (idempotent)")
KEY_PREFIX = "payment:"  # how ledger.payment keys a payment; the key column holds the rest
API_SOURCES = (PAYMENT_API, PAYMENT_CASH, PAYMENT_STATEMENT, PAYMENT_AGENT)  # what a sender may name


class PaymentCreateSchema(Body):
    contract_id = Id(required=True)
    amount = Money(required=True, positive=True, metadata={"description": "above zero"})
    external_id = Text(
        required=True,
        validate=validate.Length(1, max_len(LedgerEntry.__table__.c.idempotency_key) - len(KEY_PREFIX)),
        metadata={"description": "the payment's id in your system; a retry with the same id is harmless"},
    )
    comment = Text(allow_none=True, validate=validate.Length(max=max_len(LedgerEntry.__table__.c.comment)))
    source = Text(validate=validate.OneOf(API_SOURCES),
                  metadata={"description": "where the money came from: api (the default), cash (the sender's cash "
                                           "desk), statement (a bank statement), agent (a bank or terminal)"})


class PaymentSchema(LedgerEntrySchema):
    balance = Money(sum=True, attribute="contract.balance", metadata={"description": "the contract's balance now"})


@bp.route("", methods=["POST"])
@managers_only
@bp.arguments(PaymentCreateSchema)
@bp.response(201, PaymentSchema)
@bp.alt_response(200, schema=PaymentSchema, success=True,
                 description="This external_id was paid before: the first payment; no money moved")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def create_payment(data):
    """Post a payment to a contract (may lift a balance block)"""
    with committing(data, conflicts=("external_id",)):
        entry, created = ledger.payment(data.get("contract_id"), data.get("amount"), actor=actor(),
                                        external_id=data.get("external_id"), comment=data.get("comment"),
                                        source=data.get("source") or PAYMENT_API)
    return entry, 201 if created else 200
