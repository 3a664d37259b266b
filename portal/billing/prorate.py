"""The charge rule's arithmetic on sets of paid days, and what lifting a balance block charges.

Below quotes and blocking (it imports neither, nor accounts), so that both use it: quotes
for what a change costs, blocking for the payment that lifts a block ("top up at least").
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from ..extensions import db
from ..models import CatalogService, ChargePeriod, from_minor, to_minor
from . import clock


def days(first: int, last: int) -> int:
    """A mask of days first..last (bit d = day d); 0 when the range is empty."""
    return 0 if last < first else ((1 << (last + 1)) - 1) & ~((1 << first) - 1)


def amount(service: CatalogService, mask: int, dim: int) -> int:
    """Kopecks due for the days in ``mask`` of a month of ``dim`` days (charging's layer 2)."""
    price, n = to_minor(service.price), bin(mask).count("1")
    if service.charge_period == "day":
        return price * n
    if service.charge_mode == "daily_prorata":
        daily = (2 * price + dim) // (2 * dim)
        last = (mask >> dim) & 1  # the month's last day takes the remainder
        return n * daily + last * (price - dim * daily)
    return (2 * price * n + dim) // (2 * dim)


def unblock_charge(contract, day: date | None = None) -> Decimal:
    """What lifting the contract's balance block on ``day`` charges at once.

    The accounts the balance alone blocks become active, and the unblock is their status change,
    so the charge run then finds due, per live service, the days from ``day`` to the month's end
    (monthly in advance) or ``day`` itself (daily pro rata), less what is already paid (a balance
    block refunded nothing): blocked since an earlier month, the rest of this month."""
    day = day or clock.today()
    dim, first = clock.days_in_month(day), clock.month_start(day)
    total = 0
    for account in contract.accounts:
        if account.status != "blocked" or account.block_reasons != 1:  # the balance bit alone
            continue
        for s in account.services:
            if s.state != "active" or s.starts_on > day or (s.ends_on is not None and s.ends_on < day):
                continue
            row = db.session.get(ChargePeriod, (s.id, first), populate_existing=True)
            old_mask, old_amount = (row.days_mask, row.amount) if row is not None else (0, 0)
            end = dim if s.ends_on is None or s.ends_on > clock.month_end(day) else s.ends_on.day
            cover = day.day if s.service.charge_mode == "daily_prorata" else dim
            mask = ((old_mask & days(1, day.day - 1)) | days(day.day, min(cover, end))) & days(1, end)
            total += amount(s.service, mask, dim) - old_amount
    return from_minor(total)
