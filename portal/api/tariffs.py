"""API v1 tariffs: the services a tariff offers and its monthly fee. Reading needs any
token, writing an admin one (portal.billing.directory.save_tariff)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from ..billing import directory
from ..listing import paginate
from ..models import TARIFF_KINDS, Tariff
from .auth import actor, admins_only, authed_only
from .common import ID_PATH, Body, Id, IdOnly, ListArgs, Money, Name, Text, page_of
from .errors import committing

bp = Blueprint("tariffs", __name__, url_prefix="/api/v1/tariffs", description="Tariffs (admin writes)")
col = Tariff.__table__.c


class TariffSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String(validate=validate.OneOf(TARIFF_KINDS))
    monthly_fee = Money()
    is_multi = fields.Boolean()
    service_ids = fields.Pluck(IdOnly, "id", many=True, attribute="services")
    fee_service_id = fields.Integer(allow_none=True,
                                    metadata={"description": "the catalog service the monthly fee is charged as"})


class TariffPatchSchema(Body):
    name = Name(col.name)
    kind = Text(validate=validate.OneOf(TARIFF_KINDS))
    monthly_fee = Money(not_negative=True)
    is_multi = fields.Boolean(metadata={"description": "an add-on tariff next to the main one"})
    service_ids = fields.List(Id(), metadata={"description": "the catalog services the tariff offers"})


class TariffCreateSchema(TariffPatchSchema):
    name = Name(col.name, required=True)


@bp.route("")
class Tariffs(MethodView):
    @authed_only
    @bp.arguments(ListArgs, location="query")
    @bp.response(200, page_of(TariffSchema))
    def get(self, args):
        """List tariffs; ?q= searches the name"""
        return paginate(select(Tariff), Tariff, args, search=(Tariff.name,))

    @admins_only
    @bp.arguments(TariffCreateSchema)
    @bp.response(201, TariffSchema)
    def post(self, data):
        """Create a tariff"""
        with committing(data):
            tariff = directory.save_tariff(data, actor=actor())
        return tariff


@bp.route(f"/<{ID_PATH}:tariff_id>")
class TariffItem(MethodView):
    @authed_only
    @bp.response(200, TariffSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, tariff_id):
        """Read a tariff"""
        return directory.get_or_404(Tariff, tariff_id, "tariff_id")

    @admins_only
    @bp.arguments(TariffPatchSchema)
    @bp.response(200, TariffSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, tariff_id):
        """Change a tariff"""
        with committing(data):
            tariff = directory.get_or_404(Tariff, tariff_id, "tariff_id")
            directory.save_tariff(data, actor=actor(), tariff=tariff)
        return tariff
