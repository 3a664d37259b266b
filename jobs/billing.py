"""Billing jobs: the daily charge run."""
from __future__ import annotations

from portal.billing.charging import charge
from portal.extensions import db

from . import in_app_context


@in_app_context
def charge_today() -> dict:
    """Charge every due service for today (BILLING_TZ); safe to run twice or in parallel."""
    run = charge(actor="system")
    db.session.commit()
    return {"run_id": run.id, "date": run.run_date.isoformat(), "entries": run.entries,
            "charged": str(run.charged), "refunded": str(run.refunded), "blocked": run.blocked}
