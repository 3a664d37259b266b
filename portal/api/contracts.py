"""API v1 contracts: list and search, read (with the balance), create, change, and the
contract's ledger (portal.billing.directory.save_contract; money moves only through
payments, see payments.py)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from ..billing import directory
from ..listing import paginate
from ..models import LEDGER_KINDS, Contract, LedgerEntry
from ..models.ledger import PAYMENT_SOURCES
from .auth import actor, authed_only, managers_only
from .common import ID_PATH, MAX_BIG_ID, MAX_ID, Body, Id, ListArgs, Money, Text, page_of
from .errors import committing

bp = Blueprint("contracts", __name__, url_prefix="/api/v1/contracts",
               description="Contracts (they hold the money) and their ledgers")

# billing.directory.save_contract's rule for a number
CONTRACT_NUMBER = r"^[0-9A-Za-zА-Яа-я/._-]{1,32}$"


class ContractSchema(ma.Schema):
    id = fields.Integer()
    number = fields.String()
    subscriber_id = fields.Integer()
    credit_limit = Money()
    do_not_block = fields.Boolean()
    balance = Money(sum=True, metadata={"description": "equals the sum of the contract's ledger"})
    created_at = fields.DateTime()


class ContractPatchSchema(Body):
    number = Text(validate=validate.Regexp(CONTRACT_NUMBER), metadata={"description": "generated when not given"})
    credit_limit = Money(not_negative=True, metadata={"description": "how far below zero the balance may go before the "
                                                  "balance block"})
    do_not_block = fields.Boolean()


class ContractCreateSchema(ContractPatchSchema):
    subscriber_id = Id(required=True)


class ContractListArgs(ListArgs):
    subscriber_id = fields.Integer(validate=validate.Range(1, MAX_ID),
                                   metadata={"description": "only this subscriber's contracts"})


class LedgerArgs(ListArgs):
    after = fields.Integer(validate=validate.Range(0, MAX_BIG_ID),  # ledger ids are 64-bit
                           metadata={"description": "the `next_after` of the previous page"})


class LedgerEntrySchema(ma.Schema):
    id = fields.Integer()
    contract_id = fields.Integer()
    kind = fields.String(validate=validate.OneOf(LEDGER_KINDS))
    amount = Money(metadata={"description": "positive raises the balance, negative lowers it"})
    created_at = fields.DateTime()
    comment = fields.String(allow_none=True)
    author = fields.String(allow_none=True)
    external_id = fields.Method("_external_id", allow_none=True,
                                metadata={"type": "string", "description": "a payment's external id"})
    assigned_service_id = fields.Integer(allow_none=True)
    period_start = fields.Date(allow_none=True)
    source = fields.String(allow_none=True, validate=validate.OneOf(PAYMENT_SOURCES),
                           metadata={"description": "a payment's source: cash desk, bank statement, payment agent, "
                                                    "online payment or API v1 (null for other entries)"})
    cancels_id = fields.Integer(allow_none=True, metadata={"description": "a storno: the payment it cancels"})

    def _external_id(self, entry):
        key = entry.idempotency_key or ""
        return key.removeprefix("payment:") if key.startswith("payment:") else None


@bp.route("")
class Contracts(MethodView):
    @authed_only
    @bp.arguments(ContractListArgs, location="query")
    @bp.response(200, page_of(ContractSchema))
    def get(self, args):
        """List contracts; ?q= searches the contract number"""
        query = select(Contract)
        if args.get("subscriber_id"):
            query = query.where(Contract.subscriber_id == args["subscriber_id"])
        return paginate(query, Contract, args, search=(Contract.number,))

    @managers_only
    @bp.arguments(ContractCreateSchema)
    @bp.response(201, ContractSchema)
    def post(self, data):
        """Create a contract for a subscriber"""
        with committing(data):
            contract = directory.save_contract(data, actor=actor())
        return contract


@bp.route(f"/<{ID_PATH}:contract_id>")
class ContractItem(MethodView):
    @authed_only
    @bp.response(200, ContractSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, contract_id):
        """Read a contract and its balance"""
        return directory.get_or_404(Contract, contract_id, "contract_id")

    @managers_only
    @bp.arguments(ContractPatchSchema)
    @bp.response(200, ContractSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, contract_id):
        """Change number, credit limit or "do not block" (may block or unblock its accounts)"""
        with committing(data):
            contract = directory.get_or_404(Contract, contract_id, "contract_id")
            directory.save_contract(data, actor=actor(), contract=contract)
        return contract


@bp.route(f"/<{ID_PATH}:contract_id>/ledger")
class ContractLedger(MethodView):
    @authed_only
    @bp.arguments(LedgerArgs, location="query")
    @bp.response(200, page_of(LedgerEntrySchema))
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, args, contract_id):
        """The contract's ledger, oldest first; ?q= searches the comments"""
        directory.get_or_404(Contract, contract_id, "contract_id")
        query = select(LedgerEntry).where(LedgerEntry.contract_id == contract_id)
        return paginate(query, LedgerEntry, args, search=(LedgerEntry.comment,))
