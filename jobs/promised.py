"""Promised payments: returning those whose days ran out."""
from __future__ import annotations

from portal.billing.promised import return_due
from portal.extensions import db

from . import in_app_context

BATCH = 1000  # payments returned per transaction (set-based): their contracts are released at each commit


@in_app_context
def return_promised() -> dict:
    """Return every promised payment past its last day (BILLING_TZ); safe to run twice or in
    parallel (each is claimed once)."""
    total = 0
    while True:
        returned = return_due(actor="system", limit=BATCH)
        db.session.commit()
        total += len(returned)
        if len(returned) < BATCH:
            return {"returned": total}
