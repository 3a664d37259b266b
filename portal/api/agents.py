"""API v1 agents: what serves an account (a kind of service and, if any, its platform).
Reading needs any token, writing an admin one (portal.billing.directory.save_agent)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from ..billing import directory
from ..listing import paginate
from ..models import AGENT_KINDS, Agent
from .auth import actor, admins_only, authed_only
from .common import ID_PATH, Body, ListArgs, Name, Platform, Text, page_of
from .errors import committing

bp = Blueprint("agents", __name__, url_prefix="/api/v1/agents", description="Agents (admin writes)")
col = Agent.__table__.c


class AgentSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String(validate=validate.OneOf(AGENT_KINDS))
    platform = fields.String(allow_none=True)


class AgentPatchSchema(Body):
    name = Name(col.name)
    kind = Text(validate=validate.OneOf(AGENT_KINDS))
    platform = Platform(metadata={"description": "a registered platform name, or null"})


class AgentCreateSchema(AgentPatchSchema):
    name = Name(col.name, required=True)
    kind = Text(required=True, validate=validate.OneOf(AGENT_KINDS))


@bp.route("")
class Agents(MethodView):
    @authed_only
    @bp.arguments(ListArgs, location="query")
    @bp.response(200, page_of(AgentSchema))
    def get(self, args):
        """List agents; ?q= searches the name"""
        return paginate(select(Agent), Agent, args, search=(Agent.name,))

    @admins_only
    @bp.arguments(AgentCreateSchema)
    @bp.response(201, AgentSchema)
    def post(self, data):
        """Create an agent"""
        with committing(data):
            agent = directory.save_agent(data, actor=actor())
        return agent


@bp.route(f"/<{ID_PATH}:agent_id>")
class AgentItem(MethodView):
    @authed_only
    @bp.response(200, AgentSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, agent_id):
        """Read an agent"""
        return directory.get_or_404(Agent, agent_id, "agent_id")

    @admins_only
    @bp.arguments(AgentPatchSchema)
    @bp.response(200, AgentSchema)
    @bp.alt_response(404, response="NOT_FOUND")
    def patch(self, data, agent_id):
        """Change an agent"""
        with committing(data):
            agent = directory.get_or_404(Agent, agent_id, "agent_id")
            directory.save_agent(data, actor=actor(), agent=agent)
        return agent
