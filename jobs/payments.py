"""Payment jobs: pruning the payment agents' call records (kept billing.agent_payments.KEEP_DAYS)."""
from __future__ import annotations

from portal.billing.agent_payments import prune_calls
from portal.extensions import db

from . import in_app_context


@in_app_context
def prune_provider_calls() -> dict:
    """Delete provider-protocol call records past their retention; safe to run twice."""
    deleted = prune_calls()
    db.session.commit()
    return {"deleted": deleted}
