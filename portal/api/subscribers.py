"""API v1 subscribers: list and search, read, create and change subscriber cards
(the rules are portal.billing.directory.save_subscriber's)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import String, cast, select

from ..billing import directory
from ..listing import paginate
from ..models import SUBSCRIBER_KINDS, Subscriber
from .auth import actor, authed_only, managers_only
from .common import ID_PATH, SPACE, Body, ListArgs, Name, Text, max_len, page_of
from .errors import committing

bp = Blueprint("subscribers", __name__, url_prefix="/api/v1/subscribers", description="Subscriber cards")
col = Subscriber.__table__.c
# billing's e-mail rule (no NUL either); an empty e-mail clears it
# (\s spelled out: Python's and a JSON Schema's differ)
EMAIL_OR_EMPTY = "^$|" + directory.EMAIL_RE.pattern.replace(r"\s", SPACE + r"\x00")


class SubscriberSchema(ma.Schema):
    id = fields.Integer()
    kind = fields.String(validate=validate.OneOf(SUBSCRIBER_KINDS))
    full_name = fields.String()
    phones = fields.List(fields.String())
    email = fields.String(allow_none=True)
    postal_address = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    cabinet_login = fields.String(allow_none=True)
    created_at = fields.DateTime()


class SubscriberPatchSchema(Body):
    kind = Text(validate=validate.OneOf(SUBSCRIBER_KINDS))
    full_name = Name(col.full_name)
    phones = fields.List(Text(validate=[validate.Length(max=20), validate.Regexp(directory.PHONE_RE)]))
    email = Text(allow_none=True, validate=[validate.Length(max=max_len(col.email)),
                                            validate.Regexp(EMAIL_OR_EMPTY)])
    postal_address = Text(allow_none=True, validate=validate.Length(max=max_len(col.postal_address)))
    notes = Text(allow_none=True)
    cabinet_login = Text(allow_none=True, validate=validate.Length(max=max_len(col.cabinet_login)))
    cabinet_password = Text(load_only=True, allow_none=True, validate=validate.Length(8, 128),
                            metadata={"description": "sets the cabinet password (write-only)"})


class SubscriberCreateSchema(SubscriberPatchSchema):
    full_name = Name(col.full_name, required=True)


@bp.route("")
class Subscribers(MethodView):
    @authed_only
    @bp.arguments(ListArgs, location="query")
    @bp.response(200, page_of(SubscriberSchema))
    def get(self, args):
        """List subscribers; ?q= searches full name, e-mail, cabinet login and phones"""
        search = (Subscriber.full_name, Subscriber.email, Subscriber.cabinet_login, cast(Subscriber.phones, String))
        return paginate(select(Subscriber), Subscriber, args, search)

    @managers_only
    @bp.arguments(SubscriberCreateSchema)
    @bp.response(201, SubscriberSchema)
    def post(self, data):
        """Create a subscriber"""
        with committing(data):
            subscriber = directory.save_subscriber(data, actor=actor())
        return subscriber


@bp.route(f"/<{ID_PATH}:subscriber_id>")
class SubscriberItem(MethodView):
    @authed_only
    @bp.response(200, SubscriberSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, subscriber_id):
        """Read a subscriber"""
        return directory.get_or_404(Subscriber, subscriber_id, "subscriber_id")

    @managers_only
    @bp.arguments(SubscriberPatchSchema)
    @bp.response(200, SubscriberSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, subscriber_id):
        """Change a subscriber (only the fields sent)"""
        with committing(data):
            subscriber = directory.get_or_404(Subscriber, subscriber_id, "subscriber_id")
            directory.save_subscriber(data, actor=actor(), subscriber=subscriber)
        return subscriber
