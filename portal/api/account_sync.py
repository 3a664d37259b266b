"""API v1 platform sync of an account: per platform, the desired and the actual state, the
last error and the attempts (GET), and "reconcile now" (POST, 202).

The machinery is portal.platforms.reconcile (sync_states, request_sync); it is imported in
the views so that the API does not load the platform packages at start.
"""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from ..extensions import db
from ..models import SYNC_STATES
from .accounts import load_account
from .auth import actor, authed_only, managers_only
from .common import ID_PATH

bp = Blueprint("account_sync", __name__, url_prefix="/api/v1/accounts",
               description="Platform sync state of an account")


class Timestamp(fields.DateTime):
    """sync_states() answers JSON-friendly ISO strings; pass them on as they are."""

    def _serialize(self, value, attr, obj, **kwargs):
        return value if isinstance(value, str) else super()._serialize(value, attr, obj, **kwargs)


class SyncStateSchema(ma.Schema):
    platform = fields.String()
    state = fields.String(validate=validate.OneOf(SYNC_STATES),
                          metadata={"description": "pending, ok, retry (after a failure) or dead (gave up)"})
    desired = fields.Dict(allow_none=True, metadata={"description": "what billing wants on the platform"})
    actual = fields.Dict(allow_none=True, metadata={"description": "what the platform last reported"})
    last_error = fields.String(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = Timestamp(allow_none=True)
    synced_at = Timestamp(allow_none=True)


class SyncSchema(ma.Schema):
    items = fields.List(fields.Nested(SyncStateSchema), required=True)


# One rule for both methods: werkzeug answers an out-of-range id with 405 instead of 404 when
# two rules share a path with a bounded converter.
@bp.route(f"/<{ID_PATH}:account_id>/sync")
class AccountSync(MethodView):
    @authed_only
    @bp.response(200, SyncSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, account_id):
        """How the account stands on each of its platforms"""
        from ..platforms.reconcile import sync_states

        load_account(account_id)
        return {"items": sync_states(account_id)}

    @managers_only
    @bp.response(202, SyncSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def post(self, account_id):
        """Reconcile the account on its platforms now (queued; poll GET for the outcome)"""
        from ..platforms.reconcile import request_sync, sync_states

        load_account(account_id)
        request_sync(account_id, actor())
        # the outbox rows are enqueued on RQ by the session's after-commit hook
        db.session.commit()
        return {"items": sync_states(account_id)}
