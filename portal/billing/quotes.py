"""What a change to an account's services costs or gives back today, before it is made.

One function, ``quote``, used wherever someone must be told the price first: the upsale's
affordability check, the cabinet's preview, the staff pages. It follows the charge run's
rules (billing.charging) day by day, on the same bit masks of paid days, so that the quote is
what the change then posts (tests/test_quotes.py checks that for random prices, modes, days
and month lengths):

* assigning a service on day D charges, when the account is active and the service starts
  by D, the days the charge run would cover: D to the month's end (monthly in advance), day D
  (daily pro rata), D to the end or that day for a per-day price, as its mode says;
* ending one refunds the days from D on that are paid for (what the charge run posts back);
* a basic TV service replaces the platform's other basic (billing.accounts.replaced_by), so
  its quote includes that refund.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from ..extensions import db
from ..models import Account, AssignedService, CatalogService, ChargePeriod, from_minor
from . import clock
from .prorate import amount
from .prorate import days as _days


@dataclass(frozen=True)
class Quote:
    charge: Decimal = Decimal("0")  # taken today for what is added
    refund: Decimal = Decimal("0")  # given back today for what is removed
    ends: list[AssignedService] = field(default_factory=list)  # what the change ends

    @property
    def net(self) -> Decimal:
        """What the balance moves by (negative: it goes down)."""
        return self.refund - self.charge


def assign_charge(account: Account, service: CatalogService, day: date | None = None,
                  starts_on: date | None = None, ends_on: date | None = None) -> Decimal:
    """What assigning ``service`` to ``account`` on ``day`` charges at once."""
    day = day or clock.today()
    starts_on = starts_on or day
    if account.status != "active" or starts_on > day or (ends_on is not None and ends_on < day):
        return Decimal("0")  # not billable today: charged when it becomes so
    dim = clock.days_in_month(day)
    last = dim if service.charge_mode != "daily_prorata" else day.day
    if ends_on is not None and ends_on <= clock.month_end(day):
        last = min(last, ends_on.day)
    return from_minor(amount(service, _days(day.day, last), dim))


def end_refund(assigned: AssignedService, day: date | None = None) -> Decimal:
    """What ending ``assigned`` on ``day`` gives back: the paid days from ``day`` on."""
    day = day or clock.today()
    if assigned.id is None:
        return Decimal("0")
    row = db.session.scalar(select(ChargePeriod).where(ChargePeriod.assigned_service_id == assigned.id,
                                                       ChargePeriod.period_start == clock.month_start(day)))
    if row is None:
        return Decimal("0")
    dim = clock.days_in_month(day)
    kept = row.days_mask & _days(1, day.day - 1)  # days before today stay paid
    return from_minor(row.amount - amount(assigned.service, kept, dim))


def quote(account: Account, *, add: CatalogService | None = None, remove: AssignedService | None = None,
          day: date | None = None, starts_on: date | None = None) -> Quote:
    """What adding ``add`` and/or ending ``remove`` on ``day`` (default today) charges and
    refunds, including the basic that ``add`` replaces."""
    from .accounts import replaced_by

    day = day or clock.today()
    ends = [remove] if remove is not None and remove.state != "ended" else []
    if add is not None:
        ends += [s for s in replaced_by(account, add) if s not in ends]
    charge = assign_charge(account, add, day, starts_on) if add is not None else Decimal("0")
    refund = sum((end_refund(s, day) for s in ends), Decimal("0"))
    return Quote(charge=charge, refund=refund, ends=ends)
