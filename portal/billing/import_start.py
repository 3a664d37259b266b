"""How billing starts for a subscriber who is already watching when staff bring them into
billing from a platform (the Stalker console's "+"): the money side, in one place.

The account is new (or inactive) and on a tariff with a monthly fee; activating it the usual
way charges the rest of this month at once, and on a new contract with balance 0 the balance
rule then blocks it: the platform cuts off a subscriber who was watching. So staff choose:

* ``charge``: the usual way: the rest of this month now (the charge run's rule, as
  billing.quotes works it out); the balance rule may block if the contract's money is short;
* ``credit``: the same charge, and a correction that gives it back (the subscriber paid for
  this month elsewhere): the balance does not move; full months from the next one;
* ``next_month``: the fee starts on the 1st of next month; nothing moves now.

The services the subscriber has on the platform (optional TV packages) start the same way as
the fee: charged now, credited, or from the next month.

The default never blocks: ``charge`` when the contract's money covers it, else ``credit``
(for a subscriber the platform shows blocked, who comes in blocked and is charged nothing
while so: ``next_month``). Every figure comes from billing.quotes and every posting goes
through the ledger; the credit carries a key per account, so a repeat posts nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ..extensions import db
from ..models import Account, AssignedService, Contract, Tariff
from . import accounts, clock, ledger, quotes
from .blocking import can_afford
from .errors import BillingError

START_OPTIONS = ("charge", "credit", "next_month")
CREDIT_COMMENT = "the rest of %s credited: the subscriber was already watching when added to billing"


@dataclass(frozen=True)
class StartPreview:
    option: str
    charge: Decimal          # posted today for the rest of this month
    credit: Decimal          # given back today
    balance_after: Decimal   # the contract's balance after both
    blocks: bool             # the balance rule would block the account
    monthly_fee: Decimal     # charged in full for every month from ...
    full_from: date          # ... the next one (its first day)


@dataclass(frozen=True)
class _Starting:
    """The account as the start makes it: active from today (what billing.quotes asks)."""
    status: str = "active"


def rest_of_month(tariff: Tariff, day: date | None = None) -> Decimal:
    """What activating an account on ``tariff`` on ``day`` charges for the fee at once."""
    if tariff.fee_service is None or not tariff.monthly_fee:
        return Decimal("0")
    return quotes.assign_charge(_Starting(), tariff.fee_service, day or clock.today())


def _next_month(day: date) -> date:
    return clock.month_end(day) + timedelta(days=1)


def rest_of_month_all(tariff: Tariff, services, day: date | None = None) -> Decimal:
    """The fee and ``services`` for ``day`` to the month's end, as an activation charges them."""
    day = day or clock.today()
    return rest_of_month(tariff, day) + sum((quotes.assign_charge(_Starting(), s, day) for s in services),
                                            Decimal("0"))


def preview(tariff: Tariff, contract: Contract | None, *, watching: bool = True, services=(),
            day: date | None = None) -> dict[str, StartPreview]:
    """What each option moves on ``contract`` (None: a new one, balance 0) for the fee and the
    ``services`` the subscriber keeps. ``watching``: the platform shows the subscriber active
    (one it shows blocked comes in blocked: nothing due)."""
    day = day or clock.today()
    contract = contract if contract is not None else Contract(balance=Decimal("0"), credit_limit=Decimal("0"),
                                                              do_not_block=False)
    due = rest_of_month_all(tariff, services, day) if watching else Decimal("0")
    out = {}
    for option in START_OPTIONS:
        charge = due if option in ("charge", "credit") else Decimal("0")
        credit = due if option == "credit" else Decimal("0")
        out[option] = StartPreview(
            option=option, charge=charge, credit=credit, balance_after=contract.balance - charge + credit,
            blocks=not can_afford(contract, charge - credit),
            monthly_fee=(tariff.monthly_fee or Decimal("0")) + sum((_monthly(s, day) for s in services),
                                                                   Decimal("0")),
            full_from=_next_month(day))
    return out


def _monthly(service, day: date) -> Decimal:
    """A service's price for a whole month (a per-day price: times the days of ``day``'s month)."""
    return service.price * (clock.days_in_month(day) if service.charge_period == "day" else 1)


def default_option(previews: dict[str, StartPreview], *, watching: bool = True) -> str:
    """The choice that never blocks a subscriber who is watching."""
    if not watching:
        return "next_month"
    return "charge" if not previews["charge"].blocks else "credit"


def start(account: Account, option: str, *, actor: str, blocked: bool = False, services=()) -> Account:
    """Activate ``account`` (inactive or disabled) as ``option`` says, with ``services`` (ones
    its tariff offers) assigned the same way; ``blocked``: it comes in blocked by a manager
    (the platform shows it so). The caller commits."""
    if option not in START_OPTIONS:
        raise BillingError({"start": f"one of {', '.join(START_OPTIONS)}"})
    if account.status not in ("inactive", "disabled"):
        raise BillingError({"status": f"the account is {account.status} already"})
    if account.tariff is None:
        raise BillingError({"tariff_id": "an account needs a tariff to be activated"})
    today = clock.today()
    tariff = account.tariff
    if option == "credit" and not blocked:
        due = rest_of_month_all(tariff, services, today)
        if due:
            # posted before the activation charges it, so the balance never dips below the limit
            ledger.post(account.contract_id, "correction", due, actor=actor,
                        comment=CREDIT_COMMENT % today.strftime("%m.%Y"),
                        idempotency_key=f"import-start:{account.id}:{today:%Y-%m}")
    if option == "next_month" and tariff.fee_service_id and accounts.held_copy(account, tariff.fee_service_id) is None:
        db.session.add(AssignedService(account=account, service_id=tariff.fee_service_id,
                                       starts_on=_next_month(today), state="active", state_changed_on=today))
        db.session.flush()
    for service in services:  # assigned while inactive: the activation charges them with the fee, at once
        accounts.assign_service(account, {"service_id": service.id,
                                          "starts_on": _next_month(today) if option == "next_month" else today},
                                actor=actor)
    accounts.activate(account, actor=actor)
    if blocked:
        accounts.block(account, "manager", actor=actor)
    return account
