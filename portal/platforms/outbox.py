"""The outbox: 'account X changed, platform P must catch up', written in the caller's
transaction (so a change and its outbox row land together or not at all).

Which platforms an account is on: its agent's platform, and the platforms of the catalog
services assigned to it. Only platforms known to the registry get rows.
"""
from __future__ import annotations

from sqlalchemy import insert, literal, select, union

from ..extensions import db
from ..models import Account, Agent, AssignedService, CatalogService, OutboxEvent, utcnow


def platforms_query(account_ids):
    """(account_id, platform) pairs for the given accounts."""
    from .registry import known_platforms

    names = known_platforms()
    by_agent = (
        select(Account.id.label("account_id"), Agent.platform.label("platform"))
        .join(Agent, Agent.id == Account.agent_id)
        .where(Account.id.in_(account_ids), Agent.platform.in_(names))
    )
    by_service = (
        select(AssignedService.account_id.label("account_id"), CatalogService.platform.label("platform"))
        .join(CatalogService, CatalogService.id == AssignedService.service_id)
        .where(AssignedService.account_id.in_(account_ids), CatalogService.platform.in_(names))
    )
    return union(by_agent, by_service).subquery()


def notify(account_ids, reason: str) -> None:
    """Add outbox rows for these accounts on every platform they are on."""
    account_ids = list(account_ids)
    if not account_ids:
        return
    for start in range(0, len(account_ids), 500):
        chunk = account_ids[start:start + 500]
        pairs = platforms_query(chunk)
        db.session.execute(
            insert(OutboxEvent).from_select(
                ["account_id", "platform", "reason", "created_at"],
                select(pairs.c.account_id, pairs.c.platform, literal(reason[:64]), literal(utcnow())),
            )
        )
    # after commit, the new rows are handed to RQ (see dispatch)
    db.session.info["outbox_dirty"] = True
