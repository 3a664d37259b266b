"""API v1 services assigned to an account: list, assign (POST), change the expiry or
suspend/resume (PATCH), end (DELETE). Charges and refunds follow from
portal.billing.accounts (assign_service, set_service_expiry, set_service_state, end_service)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from ..billing import accounts as billing
from ..billing import directory
from ..billing.errors import NotFound
from ..listing import paginate
from ..models import SERVICE_STATES, AssignedService, CatalogService
from .accounts import load_account
from .auth import actor, authed_only, managers_only
from .common import ID_PATH, Body, Id, ListArgs, Text, page_of
from .errors import INVALID, committing

bp = Blueprint("account_services", __name__, url_prefix="/api/v1/accounts",
               description="Services assigned to an account")


class AssignedServiceSchema(ma.Schema):
    id = fields.Integer()
    account_id = fields.Integer()
    service_id = fields.Integer()
    service_name = fields.String(attribute="service.name")
    starts_on = fields.Date()
    ends_on = fields.Date(allow_none=True, metadata={"description": "last day in force; null: no expiry"})
    state = fields.String(validate=validate.OneOf(SERVICE_STATES))
    state_changed_on = fields.Date(allow_none=True)
    created_at = fields.DateTime()


class AssignSchema(Body):
    service_id = Id(required=True, metadata={"description": "a catalog service the account's tariffs offer"})
    starts_on = fields.Date(metadata={"description": "default: today"})
    ends_on = fields.Date(allow_none=True, metadata={"description": "last day in force; null: no expiry"})


class AssignedPatchSchema(Body):
    ends_on = fields.Date(allow_none=True, metadata={"description": "last day in force; null: no expiry"})
    state = Text(validate=validate.OneOf(("active", "suspended")),
                 metadata={"description": "suspend or resume"})


def load_assigned(account_id: int, assigned_id: int) -> AssignedService:
    assigned = directory.get_or_404(AssignedService, assigned_id, "assigned_id")
    if assigned.account_id != account_id:
        raise NotFound({"assigned_id": "not found"})
    return assigned


@bp.route(f"/<{ID_PATH}:account_id>/services")
class AccountServices(MethodView):
    @authed_only
    @bp.arguments(ListArgs, location="query")
    @bp.response(200, page_of(AssignedServiceSchema))
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, args, account_id):
        """The account's assigned services, ended ones included; ?q= searches the service name"""
        load_account(account_id)
        query = (select(AssignedService).join(AssignedService.service)
                 .where(AssignedService.account_id == account_id))
        return paginate(query, AssignedService, args, search=(CatalogService.name,))

    @managers_only
    @bp.arguments(AssignSchema)
    @bp.response(201, AssignedServiceSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def post(self, data, account_id):
        """Assign a service (charged from its start, by the charging rules)"""
        with committing(data):
            assigned = billing.assign_service(load_account(account_id), data, actor=actor())
        return assigned


@bp.route(f"/<{ID_PATH}:account_id>/services/<{ID_PATH}:assigned_id>")
class AccountServiceItem(MethodView):
    @authed_only
    @bp.response(200, AssignedServiceSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, account_id, assigned_id):
        """Read an assigned service"""
        return load_assigned(account_id, assigned_id)

    @managers_only
    @bp.arguments(AssignedPatchSchema)
    @bp.response(200, AssignedServiceSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, account_id, assigned_id):
        """Set or clear the expiry (`ends_on`), or suspend/resume (`state`)"""
        with committing(data):
            assigned = load_assigned(account_id, assigned_id)
            if "ends_on" in data:
                billing.set_service_expiry(assigned, data["ends_on"], actor=actor())
            if "state" in data:
                billing.set_service_state(assigned, data["state"], actor=actor())
        return assigned

    @managers_only
    @bp.response(200, AssignedServiceSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    @bp.alt_response(422, response=INVALID)
    def delete(self, account_id, assigned_id):
        """End the service now (monthly in advance: today and the rest of the period are refunded)"""
        with committing():
            assigned = load_assigned(account_id, assigned_id)
            billing.end_service(assigned, actor=actor())
        return assigned
