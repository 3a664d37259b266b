"""The balance forecast: "your money lasts N more days", and the daily low-balance warnings.

**What N is.** A contract's money is ``balance + credit_limit`` (the balance rule blocks below
zero). Day by day from tomorrow (``BILLING_TZ``) we add up what the charge run will post on that
day if nothing changes, by the charging rules (``charging.amount_sql``, the one amount rule):

* a ``daily_prorata`` service: each day it is in force, that day's amount (price / days in the
  month, half-up; the month's last day the remainder; a per-``day`` service its price);
* a ``monthly_advance`` service: on the 1st of a month (or the day it starts) the days from
  there to the month's end or its ``ends_on``;
* a promised payment in force: its whole amount, on the day after its last day (the return).

Only services that are billable now count: account ``active`` (not blocked for any reason,
frozen, disabled), service ``active``; what today's and the month's charge run posted already
is in the balance (the warning pass is scheduled after the charge run). N is the number of
days from tomorrow whose running total the money covers; ``until`` = today + N is the last
covered day and ``charge_on`` = until + 1 the day whose charge it does not cover. A contract
with no charges, with "do not block", or whose money covers every day of the horizon has no
N (never warned). Nor has a contract already below its credit limit (balance + credit limit
< 0): blocked, or in grace, where ``billing.grace`` warns of the block instead.

**Warnings.** The operator sets thresholds (``ForecastSettings``: e.g. 7, 3, 1 days). The daily
pass (``warn``) records a ``low_balance`` notice for each contract whose N is at most the
largest threshold, at the smallest threshold T >= N, with the dedup key
``low_balance:<contract>:<T>:<charge_on>``: the 7-day warning comes once, the 3-day one once
more when N drops to 3, and again only if the forecast moves (a payment, a new service) and
the money runs out on another day. Reruns and parallel runs record nothing twice (the unique
key). Set-based: one cheap upper bound over every contract (price x month starts in the
horizon) leaves the few that may run short, and only those are expanded day by day.

**Data keys of a ``low_balance`` notice** (amounts as strings "498.06", dates ISO; the names
``portal.notifications.templates`` uses): ``days_left`` (N, int), ``runs_out_on`` (the last
covered day), ``suggested_payment`` (how much more money covers the first uncovered day's
charge), ``threshold`` (T, int), ``charge_on`` (the first day not covered), ``charge`` (what is
charged that day), ``balance`` (the contract's balance now), ``credit_limit``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    true,
    type_coerce,
    union_all,
)

from ..extensions import db
from ..models import (
    Account,
    AssignedService,
    CatalogService,
    Contract,
    ForecastSettings,
    Notice,
    PromisedPayment,
    from_minor,
    utcnow,
)
from . import audit, clock, notices
from .charging import _day_of_month, amount_sql
from .errors import BillingError
from .sqlfrag import amount_text, json_object

SETTINGS_ID = 1
DEFAULT_THRESHOLDS = (1, 3, 7)
MAX_THRESHOLD = 31      # days: a month ahead at most (the pass's horizon is the largest + 1)
MAX_THRESHOLDS = 5
DISPLAY_HORIZON = 62    # days the cabinet and the contract page look ahead


def _int(col):
    return type_coerce(col, BigInteger)


# -- settings ---------------------------------------------------------------------------------

def settings() -> ForecastSettings:
    """The operator's settings (an unsaved default, enabled at 1, 3 and 7 days, until saved)."""
    return db.session.get(ForecastSettings, SETTINGS_ID) or ForecastSettings(
        id=SETTINGS_ID, enabled=True, thresholds=",".join(map(str, DEFAULT_THRESHOLDS)))


def thresholds_of(row: ForecastSettings) -> list[int]:
    return sorted(int(t) for t in row.thresholds.split(",") if t)


def parse_thresholds(raw) -> list[int]:
    """Thresholds from a form ("7, 3, 1") or a list: whole days 1..31, distinct, at most 5."""
    if isinstance(raw, str):
        parts = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
    elif isinstance(raw, list | tuple):
        parts = list(raw)
    else:
        parts = None
    if not parts:
        raise BillingError({"thresholds": "required"})
    values = []
    for p in parts:
        if isinstance(p, bool) or not (isinstance(p, int) or (isinstance(p, str) and p.isascii() and p.isdigit()
                                                              and len(p) < 4)):
            raise BillingError({"thresholds": "whole numbers of days, separated by commas"})
        values.append(int(p))
    if any(not 1 <= v <= MAX_THRESHOLD for v in values):
        raise BillingError({"thresholds": f"each from 1 to {MAX_THRESHOLD} days"})
    if len(set(values)) != len(values):
        raise BillingError({"thresholds": "each day only once"})
    if len(values) > MAX_THRESHOLDS:
        raise BillingError({"thresholds": f"at most {MAX_THRESHOLDS} thresholds"})
    return sorted(values)


def save_settings(data: dict, *, actor: str) -> ForecastSettings:
    """Save ``enabled`` (bool) and ``thresholds`` (see parse_thresholds); every error names its
    field and nothing is saved then."""
    errors = {}
    try:
        values = parse_thresholds(data.get("thresholds"))
    except BillingError as e:
        errors.update(e.fields)
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        errors["enabled"] = "true or false"
    if errors:
        raise BillingError(errors)
    row = db.session.get(ForecastSettings, SETTINGS_ID)
    before = {"enabled": row.enabled, "thresholds": row.thresholds} if row is not None else None
    if row is None:
        row = ForecastSettings(id=SETTINGS_ID)
        db.session.add(row)
    row.enabled, row.thresholds = enabled, ",".join(map(str, values))
    row.updated_at, row.updated_by = utcnow(), actor
    db.session.flush()
    audit.record(actor, "forecast.settings", row, "low-balance forecast settings saved", before=before,
                 after={"enabled": enabled, "thresholds": row.thresholds}, object_type="forecast_settings")
    return row


# -- the forecast -----------------------------------------------------------------------------

def _calendar(today: date, horizon: int):
    """Days 1..horizon after ``today``, as a small derived table: (k, d, prev, dom, dim, me, first)."""
    rows = []
    for k in range(1, horizon + 1):
        d = today + timedelta(days=k)
        rows.append(select(literal(k, Integer).label("k"), literal(d, Date).label("d"),
                           literal(d - timedelta(days=1), Date).label("prev"),
                           literal(d.day, Integer).label("dom"),
                           literal(clock.days_in_month(d), Integer).label("dim"),
                           literal(clock.month_end(d), Date).label("me"),
                           literal(1 if d.day == 1 else 0, Integer).label("first")))
    return union_all(*rows).subquery("cal")


def _money():
    c = Contract.__table__.c
    return _int(c.balance) + _int(c.credit_limit)


def _daily_bound(price, cal_days: list[date]):
    """At least what a daily pro rata service costs over these days: per month touched,
    price x days / days-in-month plus a kopeck a day (the half-up rounding) plus days-in-month
    kopecks when the month's last day is among them (its remainder)."""
    months: dict[tuple[int, int], list[date]] = {}
    for d in cal_days:
        months.setdefault((d.year, d.month), []).append(d)
    terms = []
    for days in months.values():
        dim = clock.days_in_month(days[0])
        last = dim if any(d.day == dim for d in days) else 0
        terms.append((price * len(days)) // dim + len(days) + last)
    return sum(terms[1:], terms[0])


def _forecast_rows(today: date, horizon: int, ids=None):
    """Per contract that runs short within ``horizon`` days from tomorrow: (contract_id,
    subscriber_id, days, charge, short, balance, credit_limit), amounts in kopecks.

    ``ids``: only these contracts (the pages); None: every contract, first narrowed by a cheap
    upper bound of what each may be charged in the horizon (a monthly service: its price per
    month start, once more if it starts later; daily pro rata: ``_daily_bound``; per day: price
    x days), so that only those the bound leaves short are expanded day by day."""
    cal = _calendar(today, horizon)
    cal_days = [today + timedelta(days=k) for k in range(1, horizon + 1)]
    s, a, c, cs = (AssignedService.__table__.c, Account.__table__.c, Contract.__table__.c,
                   CatalogService.__table__.c)
    p = PromisedPayment.__table__.c
    price = _int(cs.price)
    starts = sum(1 for d in cal_days if d.day == 1)
    later = case((s.starts_on > today, 1), else_=0)
    bound = case(
        (and_(cs.charge_mode == "daily_prorata", cs.charge_period == "day"), price * len(cal_days)),
        (cs.charge_mode == "daily_prorata", _daily_bound(price, cal_days)),
        (cs.charge_period == "day", price * 31 * (starts + later)),
        else_=price * (starts + later),
    )
    # rows stay narrow (they are sorted by the million): the contract's other figures join at the end
    contract_cols = [c.id.label("contract_id"), _money().label("money")]
    # the services that count: billable now, not ended before tomorrow, contract blockable
    facts = (select(*contract_cols, price.label("price"), cs.charge_period.label("per"),
                    cs.charge_mode.label("mode"), s.starts_on, s.ends_on, bound.label("bound"))
             .select_from(AssignedService.__table__.join(Account.__table__, a.id == s.account_id)
                          .join(Contract.__table__, c.id == a.contract_id)
                          .join(CatalogService.__table__, cs.id == s.service_id))
             .where(s.state == "active", a.status == "active", c.do_not_block.is_(False), _money() >= 0,
                    or_(s.ends_on.is_(None), s.ends_on > today), s.starts_on <= cal_days[-1]))
    # promised payments in force: returned (a debit of the whole amount) the day after their last
    returns = (select(*contract_cols, _int(p.amount).label("amount"), p.until)
               .select_from(PromisedPayment.__table__.join(Contract.__table__, c.id == p.contract_id))
               .where(p.status == "active", p.until < cal_days[-1], c.do_not_block.is_(False), _money() >= 0))
    if ids is not None:
        facts = facts.where(c.id.in_(ids))
        returns = returns.where(c.id.in_(ids))
    facts, returns = facts.cte("facts"), returns.cte("returns")
    if ids is None:
        bounds = union_all(select(facts.c.contract_id, facts.c.money, facts.c.bound),
                           select(returns.c.contract_id, returns.c.money, returns.c.amount)).subquery("bounds")
        short = (select(bounds.c.contract_id).group_by(bounds.c.contract_id)
                 .having(func.sum(bounds.c.bound) > func.max(bounds.c.money))).cte("short")
        facts_short = facts.join(short, short.c.contract_id == facts.c.contract_id)
        returns_short = returns.join(short, short.c.contract_id == returns.c.contract_id)
    else:
        facts_short, returns_short = facts, returns
    ctes = [facts, returns] + ([short] if ids is None else [])

    # what the charge run posts on day today + k (charging.amount_sql: the one amount rule)
    f = facts.c
    in_force = and_(f.starts_on <= cal.c.d, or_(f.ends_on.is_(None), f.ends_on >= cal.c.d))
    end_day = case((or_(f.ends_on.is_(None), f.ends_on >= cal.c.me), cal.c.dim), else_=_day_of_month(f.ends_on))
    cost = case(
        (~in_force, literal(0, BigInteger)),
        (f.mode == "daily_prorata",
         amount_sql(f.per, f.mode, f.price, 1, case((cal.c.dom == cal.c.dim, 1), else_=0), cal.c.dim)),
        # monthly in advance: on the 1st, or the day it starts, the days to the month's (its) end
        (or_(cal.c.first == 1, f.starts_on == cal.c.d),
         amount_sql(f.per, f.mode, f.price, end_day - cal.c.dom + 1, case((end_day == cal.c.dim, 1), else_=0),
                    cal.c.dim)),
        else_=literal(0, BigInteger),
    )
    keep = [f.contract_id, f.money]
    r = returns.c
    per_row = union_all(
        select(*keep, cal.c.k, cost.label("cost")).select_from(facts_short.join(cal, true())),
        select(r.contract_id, r.money, cal.c.k, r.amount)
        .select_from(returns_short.join(cal, cal.c.prev == r.until)),
    ).subquery("per_row")
    u = per_row.c
    # the running total by day: the window's default frame (RANGE ... CURRENT ROW) takes in every
    # row of the same day, so services need no GROUP BY per day first
    running = select(u.contract_id, u.money, u.k,
                     func.sum(u.cost).over(partition_by=u.contract_id, order_by=u.k).label("cum")
                     ).subquery("running")
    w = running.c
    covered = w.cum <= w.money
    first_short = func.min(case((~covered, w.cum)))
    money = func.min(w.money)
    short_by = (select(w.contract_id,
                       # days 1..N are covered (the total only grows)
                       func.coalesce(func.max(case((covered, w.k))), 0).label("days"),
                       (first_short - func.coalesce(func.max(case((covered, w.cum))), 0)).label("charge"),
                       (first_short - money).label("short"))
                .group_by(w.contract_id).having(func.max(w.cum) > money)).subquery("short_by")
    return (select(short_by.c.contract_id, c.subscriber_id, short_by.c.days, short_by.c.charge, short_by.c.short,
                   _int(c.balance).label("balance"), _int(c.credit_limit).label("credit_limit"))
            .select_from(short_by.join(Contract.__table__, c.id == short_by.c.contract_id))
            # the WITH inside this SELECT, not atop the INSERT: pysqlite counts rows only of a
            # statement that starts with INSERT
            .add_cte(*ctes, nest_here=True))


@lru_cache(maxsize=8)
def _scoped_statement(today: date, horizon: int):
    """The pages' statement for a day, built and compiled once per process and day (building
    and compiling it cost several times running it for one contract); ``ids`` is a parameter."""
    return _forecast_rows(today, horizon, bindparam("ids", expanding=True))


@dataclass
class Forecast:
    days: int            # full days from tomorrow the money covers
    until: date          # the last covered day
    charge_on: date      # the first day whose charge it does not cover
    charge: Decimal      # what is charged that day
    short: Decimal       # how much more money covers that day


def forecast(contract_ids, today: date | None = None, horizon: int = DISPLAY_HORIZON) -> dict[int, Forecast]:
    """The forecast of these contracts (the same SQL as the warning pass); contracts whose
    money covers the whole horizon, or that have no charges or "do not block", are absent."""
    ids = list(contract_ids)
    if not ids:
        return {}
    today = today or clock.today()
    out = {}
    for row in db.session.execute(_scoped_statement(today, horizon), {"ids": ids}):
        until = today + timedelta(days=row.days)
        out[row.contract_id] = Forecast(row.days, until, until + timedelta(days=1), from_minor(row.charge),
                                        from_minor(row.short))
    return out


def _day_text(today: date, n, horizon: int):
    """The ISO date today + n for n in 0..horizon+1, as a CASE on n (dates stay text in JSON)."""
    return case({k: (today + timedelta(days=k)).isoformat() for k in range(horizon + 2)}, value=n)


def warn(today: date | None = None, *, now: datetime | None = None) -> int:
    """The daily pass: record a ``low_balance`` notice for every contract whose money runs out
    within the largest threshold (module docstring). ``now``: the moment of the run (its date
    in BILLING_TZ is "today"; default: now). Returns the notices recorded."""
    if today is None:
        today = now.astimezone(clock.tz()).date() if now is not None else clock.today()
    row = settings()
    levels = thresholds_of(row)
    if not row.enabled or not levels:
        return 0
    horizon = levels[-1] + 1
    if db.session.get_bind().dialect.name == "postgresql":
        # for this transaction only: the pass hashes and sorts a million rows; at the stock 4MB
        # they spill to temporary files (the job commits right after)
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))
    summary = _forecast_rows(today, horizon).subquery("summary")
    n = summary.c.days
    level = case(*[(n <= t, t) for t in levels])
    charge_on = _day_text(today, n + 1, horizon)
    key = (literal("low_balance:") + cast(summary.c.contract_id, String) + literal(":") + cast(level, String)
           + literal(":") + charge_on)
    data = json_object("days_left", n, "threshold", level, "runs_out_on", _day_text(today, n, horizon),
                       "charge_on", charge_on, "charge", amount_text(summary.c.charge),
                       "suggested_payment", amount_text(summary.c.short),
                       "balance", amount_text(summary.c.balance),
                       "credit_limit", amount_text(summary.c.credit_limit))
    rows = (select(summary.c.subscriber_id, summary.c.contract_id, literal("low_balance"), data, literal(False),
                   key, literal(utcnow(), type_=Notice.__table__.c.created_at.type))
            .where(n <= levels[-1]).order_by(summary.c.contract_id))
    return notices.insert_from_select(
        ["subscriber_id", "contract_id", "event", "data", "critical", "dedup_key", "created_at"], rows)


