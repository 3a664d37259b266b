"""The daily warnings of issue 19: the low-balance forecast pass and promised payments about to
be returned (billing.forecast, billing.notice_events). Each is one set-based pass; a rerun or
a parallel run records nothing twice (dedup keys)."""
from __future__ import annotations

from portal.billing import forecast, notice_events
from portal.extensions import db

from . import in_app_context, report


@in_app_context
def warn_low_balance() -> dict:
    """Record today's low-balance warnings (BILLING_TZ day, operator's thresholds)."""
    recorded = forecast.warn()
    db.session.commit()
    report(result=f"{recorded} low-balance warning(s)")
    return {"recorded": recorded}


@in_app_context
def warn_promised_expiring() -> dict:
    """Tell those whose promised payment is taken back tomorrow."""
    recorded = notice_events.promised_expiring()
    db.session.commit()
    report(result=f"{recorded} promised-payment reminder(s)")
    return {"recorded": recorded}
