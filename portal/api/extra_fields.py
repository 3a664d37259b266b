"""API v1 extra fields: the account fields staff declare (e.g. ``isvyaz_login``, which the
«Интерсвязь» integration reads). Reading needs any token, writing an admin one
(portal.billing.directory.save_extra_field validates; the same rules as the admin form)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from ..billing import directory
from ..listing import paginate
from ..models import EXTRA_FIELD_TYPES, ExtraFieldDefinition
from .auth import actor, admins_only, authed_only
from .common import ID_PATH, Body, ListArgs, Name, Text, max_len, page_of
from .errors import committing

bp = Blueprint("extra_fields", __name__, url_prefix="/api/v1/extra-fields",
               description="Account extra fields (admin writes)")
col = ExtraFieldDefinition.__table__.c


class ExtraFieldSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    title = fields.String()
    type = fields.String(validate=validate.OneOf(EXTRA_FIELD_TYPES))
    pattern = fields.String(allow_none=True)
    required = fields.Boolean()


FIELD_NAME = r"^[a-z][a-z0-9_]{0,63}$"  # billing.directory.save_extra_field's rule


class ExtraFieldPatchSchema(Body):
    name = Text(validate=validate.Regexp(FIELD_NAME),
                metadata={"description": "lowercase latin letters, digits and _, starting with a letter"})
    title = Name(col.title)
    type = Text(validate=validate.OneOf(EXTRA_FIELD_TYPES))
    pattern = Text(allow_none=True, validate=validate.Length(max=max_len(col.pattern)),
                   metadata={"description": "a regular expression the whole value must match, or null"})
    required = fields.Boolean()


class ExtraFieldCreateSchema(ExtraFieldPatchSchema):
    name = Text(required=True, validate=validate.Regexp(FIELD_NAME))
    title = Name(col.title, required=True)


@bp.route("")
class ExtraFields(MethodView):
    @authed_only
    @bp.arguments(ListArgs, location="query")
    @bp.response(200, page_of(ExtraFieldSchema))
    def get(self, args):
        """List extra fields; ?q= searches the name"""
        return paginate(select(ExtraFieldDefinition), ExtraFieldDefinition, args,
                        search=(ExtraFieldDefinition.name,))

    @admins_only
    @bp.arguments(ExtraFieldCreateSchema)
    @bp.response(201, ExtraFieldSchema)
    def post(self, data):
        """Create an extra field"""
        with committing(data):
            field = directory.save_extra_field(data, actor=actor())
        return field


@bp.route(f"/<{ID_PATH}:field_id>")
class ExtraFieldItem(MethodView):
    @authed_only
    @bp.response(200, ExtraFieldSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, field_id):
        """Read an extra field"""
        return directory.get_or_404(ExtraFieldDefinition, field_id, "field_id")

    @admins_only
    @bp.arguments(ExtraFieldPatchSchema)
    @bp.response(200, ExtraFieldSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, field_id):
        """Change an extra field"""
        with committing(data):
            field = directory.get_or_404(ExtraFieldDefinition, field_id, "field_id")
            directory.save_extra_field(data, actor=actor(), field=field)
        return field
