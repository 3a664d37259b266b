"""Promised payments: returning those whose days ran out."""
from __future__ import annotations

from portal.billing.promised import return_due
from portal.extensions import db

from . import in_app_context


@in_app_context
def return_promised() -> dict:
    """Return every promised payment past its last day (BILLING_TZ); safe to run twice or in
    parallel (each is claimed once)."""
    returned = return_due(actor="system")
    db.session.commit()
    return {"returned": len(returned)}
