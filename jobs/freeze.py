"""Voluntary freezes: ending those whose last day has passed (portal.billing.freeze.end_due)."""
from __future__ import annotations

from portal.billing.freeze import end_due
from portal.extensions import db

from . import in_app_context

BATCH = 500  # freezes ended per transaction: set-based within a batch, short locks between


@in_app_context
def end_freezes() -> dict:
    """Unfreeze every account whose freeze's last day (BILLING_TZ) is past; safe to run twice or
    in parallel (each freeze is claimed once)."""
    total = 0
    while True:
        ended = end_due(actor="system", limit=BATCH)
        db.session.commit()
        total += len(ended)
        if len(ended) < BATCH:
            return {"unfrozen": total}
