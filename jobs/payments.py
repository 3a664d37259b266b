"""Payment jobs: pruning the payment agents' call records (kept billing.agent_payments.KEEP_DAYS);
reading back online payments that no notification settled."""
from __future__ import annotations

from portal.billing.agent_payments import prune_calls
from portal.extensions import db
from portal.payments.yookassa import service as yookassa

from . import in_app_context


@in_app_context
def prune_provider_calls() -> dict:
    """Delete provider-protocol call records past their retention; safe to run twice."""
    deleted = prune_calls()
    db.session.commit()
    return {"deleted": deleted}


@in_app_context
def recheck_online_payments() -> dict:
    """Read back the ЮKassa payments left pending (a lost notification), credit those paid once,
    mark those canceled or expired; safe to run twice or in parallel (one credit per payment id)."""
    counts = yookassa.recheck_pending()
    db.session.commit()
    return counts
