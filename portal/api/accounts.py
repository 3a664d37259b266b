"""API v1 accounts: list and search, read, create, change, and the status actions
(activate, block, unblock, disable). The rules, the charges and refunds an action causes
and the platform outbox are portal.billing.accounts'. The service password is write-only:
it is stored encrypted and never answered back."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..billing import accounts as billing
from ..billing import directory
from ..listing import paginate
from ..models import ACCOUNT_STATUSES, BLOCK_REASONS, Account, ExtraFieldValue
from .auth import actor, authed_only, managers_only
from .common import ID_PATH, MAX_ID, Body, Id, IdOnly, ListArgs, Text, max_len, page_of
from .errors import INVALID, committing

bp = Blueprint("accounts", __name__, url_prefix="/api/v1/accounts",
               description="Accounts and their status actions")
col = Account.__table__.c


class AccountSchema(ma.Schema):
    id = fields.Integer()
    contract_id = fields.Integer()
    login = fields.String()
    agent_id = fields.Integer()
    tariff_id = fields.Integer(allow_none=True)
    multi_tariff_ids = fields.Pluck(IdOnly, "id", many=True, attribute="multi_tariffs")
    house = fields.String(allow_none=True)
    flat = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(ACCOUNT_STATUSES))
    block_reasons = fields.List(fields.String(validate=validate.OneOf(list(BLOCK_REASONS))), attribute="reasons",
                                metadata={"description": "why a blocked account is blocked"})
    status_changed_on = fields.Date(allow_none=True)
    extra = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "extra fields"})
    created_at = fields.DateTime()


class AccountPatchSchema(Body):
    password = Text(load_only=True, validate=validate.Length(4, 128),
                    metadata={"description": "the service password (write-only)"})
    agent_id = Id()
    tariff_id = Id()
    multi_tariff_ids = fields.List(Id())
    house = Text(allow_none=True, validate=validate.Length(max=max_len(col.house)))
    flat = Text(allow_none=True, validate=validate.Length(max=max_len(col.flat)))
    extra = fields.Dict(keys=Text(validate=validate.Length(max=64)),
                        values=Text(allow_none=True, validate=validate.Length(max=500)),
                        metadata={"description": "extra field name -> value; null or \"\" removes a value"})


class AccountCreateSchema(AccountPatchSchema):
    contract_id = Id(required=True)
    login = Text(required=True, validate=validate.Regexp(billing.LOGIN_RE))
    agent_id = Id(required=True)


class AccountListArgs(ListArgs):
    contract_id = fields.Integer(validate=validate.Range(1, MAX_ID), metadata={"description": "only this contract's"})
    status = Text(validate=validate.OneOf(ACCOUNT_STATUSES))


def load_account(account_id: int) -> Account:
    return directory.get_or_404(Account, account_id, "account_id")


@bp.route("")
class Accounts(MethodView):
    @authed_only
    @bp.arguments(AccountListArgs, location="query")
    @bp.response(200, page_of(AccountSchema))
    def get(self, args):
        """List accounts; ?q= searches the login"""
        query = select(Account).options(
            selectinload(Account.multi_tariffs),
            selectinload(Account.extra_values).joinedload(ExtraFieldValue.field),
        )
        if args.get("contract_id"):
            query = query.where(Account.contract_id == args["contract_id"])
        if args.get("status"):
            query = query.where(Account.status == args["status"])
        return paginate(query, Account, args, search=(Account.login,))

    @managers_only
    @bp.arguments(AccountCreateSchema)
    @bp.response(201, AccountSchema)
    def post(self, data):
        """Create an account (inactive until activated)"""
        with committing(data):
            account = billing.create_account(data, actor=actor())
        return account


@bp.route(f"/<{ID_PATH}:account_id>")
class AccountItem(MethodView):
    @authed_only
    @bp.response(200, AccountSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, account_id):
        """Read an account"""
        return load_account(account_id)

    @managers_only
    @bp.arguments(AccountPatchSchema)
    @bp.response(200, AccountSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, account_id):
        """Change password, address, agent, extra fields, tariff or multi-tariffs"""
        with committing(data):
            account = load_account(account_id)
            billing.update_account(account, data, actor=actor())
        return account


def _transition(account_id: int, change) -> Account:
    """Apply one status action; 422 names what forbids it (e.g. `status`)."""
    with committing():
        account = load_account(account_id)
        change(account)
    return account


def _action(path: str):
    """Route, role, answer and error docs shared by the four status actions."""
    def decorator(view):
        for wrap in (bp.alt_response(422, response=INVALID), bp.alt_response(404, response="NOT_FOUND"),
                     bp.response(200, AccountSchema), managers_only):
            view = wrap(view)
        return bp.route(f"/<{ID_PATH}:account_id>/{path}", methods=["POST"])(view)
    return decorator


@_action("activate")
def activate_account(account_id):
    """Activate an inactive or disabled account (charges its services from today)"""
    return _transition(account_id, lambda a: billing.activate(a, actor=actor()))


@_action("block")
def block_account(account_id):
    """Block by the manager (refunds the rest of the period; a payment does not lift it)"""
    return _transition(account_id, lambda a: billing.block(a, "manager", actor=actor()))


@_action("unblock")
def unblock_account(account_id):
    """Lift the manager's block (charges the days it gives back)"""
    return _transition(account_id, lambda a: billing.unblock(a, "manager", actor=actor()))


@_action("disable")
def disable_account(account_id):
    """Disable an account (refunds the rest of the period)"""
    return _transition(account_id, lambda a: billing.disable(a, actor=actor()))
