"""API v1 catalog services: what can be assigned to accounts, its price and how it is
charged. Reading needs any token, writing an admin one (portal.billing.directory.save_service)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from ..billing import directory
from ..listing import paginate
from ..models import CHARGE_MODES, CHARGE_PERIODS, IPTV_KINDS, CatalogService
from .auth import actor, admins_only, authed_only
from .common import ID_PATH, Body, ListArgs, Money, Name, Platform, Text, max_len, page_of
from .errors import committing

bp = Blueprint("services", __name__, url_prefix="/api/v1/services",
               description="Catalog services (admin writes)")
col = CatalogService.__table__.c


class ServiceSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    price = Money()
    charge_period = fields.String(validate=validate.OneOf(CHARGE_PERIODS))
    charge_mode = fields.String(validate=validate.OneOf(CHARGE_MODES))
    platform = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    iptv_kind = fields.String(allow_none=True, validate=validate.OneOf(IPTV_KINDS))


class ServicePatchSchema(Body):
    name = Name(col.name)
    price = Money(not_negative=True)
    charge_period = Text(validate=validate.OneOf(CHARGE_PERIODS),
                         metadata={"description": "per month or per day"})
    charge_mode = Text(validate=validate.OneOf(CHARGE_MODES))
    platform = Platform(metadata={"description": "a registered platform name, or null"})
    external_id = Text(allow_none=True, validate=validate.Length(max=max_len(col.external_id)),
                       metadata={"description": "the service's id on its platform"})
    iptv_kind = Text(allow_none=True, validate=validate.OneOf(IPTV_KINDS))


class ServiceCreateSchema(ServicePatchSchema):
    name = Name(col.name, required=True)
    price = Money(required=True, not_negative=True)


@bp.route("")
class Services(MethodView):
    @authed_only
    @bp.arguments(ListArgs, location="query")
    @bp.response(200, page_of(ServiceSchema))
    def get(self, args):
        """List catalog services; ?q= searches the name and the external id"""
        return paginate(select(CatalogService), CatalogService, args,
                        search=(CatalogService.name, CatalogService.external_id))

    @admins_only
    @bp.arguments(ServiceCreateSchema)
    @bp.response(201, ServiceSchema)
    def post(self, data):
        """Create a catalog service"""
        with committing(data):
            service = directory.save_service(data, actor=actor())
        return service


@bp.route(f"/<{ID_PATH}:service_id>")
class ServiceItem(MethodView):
    @authed_only
    @bp.response(200, ServiceSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, service_id):
        """Read a catalog service"""
        return directory.get_or_404(CatalogService, service_id, "service_id")

    @admins_only
    @bp.arguments(ServicePatchSchema)
    @bp.response(200, ServiceSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, service_id):
        """Change a catalog service (a new price applies from the next charge)"""
        with committing(data):
            service = directory.get_or_404(CatalogService, service_id, "service_id")
            directory.save_service(data, actor=actor(), service=service)
        return service
