"""Does a queued warning still hold when its turn to go comes?

A low-balance, grace or block warning is written at one moment (the forecast pass, the charge
run, a charge) and sent later: after the quiet hours, a gateway outage, a queue of thousands.
The issue's rule is "never a low-balance or block warning when the balance, with payments
already received, covers what is due", so the delivery job asks billing again just before it
claims the row (``delivery.deliver``), with billing's own rules — nothing is restated here:

* ``low_balance`` of the forecast (data ``threshold``): the contract's forecast now
  (``forecast.forecast``, the same SQL as the pass) still runs out within that threshold, or
  the money is already below the credit limit (``blocking.money_left``);
* ``low_balance`` of the grace (data ``grace``): the contract is still in grace today
  (``grace.grace_block_on``: below the limit, not held, not yet blocked);
* ``blocked``: an account of the contract is still blocked by balance (the rule lifts it in the
  payment's own transaction, or when a hold starts).

Otherwise the answer is the reason the delivery log shows on the ``cancelled`` row. A contract
staff set to "do not block" (or "do not block until" a day still to come) is asked about first:
it drops out of the forecast and the grace, and the reason must say so, not "paid since the
warning". Any other event, or a notice without a contract, always holds.
"""
from __future__ import annotations

from sqlalchemy import select

from ..billing import blocking, clock, forecast, grace
from ..extensions import db
from ..models import Account, Contract

WARNINGS = ("low_balance", "blocked")


def obsolete(event: str, contract_id: int | None, data: dict) -> str | None:
    """Why this warning should no longer go out (the delivery log's reason), or None."""
    if event not in WARNINGS or contract_id is None:
        return None
    contract = db.session.get(Contract, contract_id)
    if contract is None:
        return None
    if event == "blocked" and _blocked_by_balance(contract.id):
        return None
    if contract.do_not_block:
        return "cancelled: staff set the contract not to be blocked"
    held = grace.hold_until(contract, clock.today())
    if held is not None:
        return f"cancelled: staff set the contract not to be blocked until {held.isoformat()}"
    if event == "blocked":
        if blocking.money_left(contract) >= 0:
            return "cancelled: the balance covers what is due now (paid since the block)"
        return "cancelled: no account of the contract is blocked for balance any more (held, or lifted)"
    if data.get("grace"):
        if grace.grace_block_on(contract) is not None:
            return None
        if blocking.money_left(contract) >= 0:
            return "cancelled: the balance covers what is due now (paid since the warning)"
        return "cancelled: the contract is no longer in grace (held, or blocked already)"
    threshold = _int(data.get("threshold", data.get("days_left")))
    if threshold is None or blocking.money_left(contract) < 0:
        return None
    now = forecast.forecast([contract.id], horizon=threshold + 1).get(contract.id)
    if now is not None and now.days <= threshold:
        return None
    return (f"cancelled: the balance now covers more than {threshold} day(s) of charges "
            "(paid since the warning)")


def _blocked_by_balance(contract_id: int) -> bool:
    a = Account.__table__.c
    return db.session.scalar(select(a.id).where(a.contract_id == contract_id, a.status == "blocked",
                                                a.block_reasons.op("&")(blocking.BALANCE) != 0).limit(1)) is not None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
