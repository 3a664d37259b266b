"""Event notices where the events happen (issue 19, section 2): a payment posted, a promised
payment about to be returned, a service assigned, bought or ended. Each is recorded in the
change's own transaction through ``billing.notices``, with a dedup key made of the event and
the row it is about, so a replayed payment, callback or pass records nothing twice. The
low-balance warnings are ``billing.forecast``; the block notice is ``billing.blocking``'s.

Data keys per event (amounts as strings "498.06", dates ISO "2025-01-31"; the names the
templates of ``portal.notifications.templates`` use, plus a few more):

* ``payment_received`` (not critical: a subscriber who asked for service-critical messages
  only is not written to about every payment; it goes on the ``low`` queue and waits out the
  quiet hours like the other courtesies): ``amount``, ``paid_at`` (ISO moment, UTC), ``balance`` (the
  contract's balance after the payment and whatever it unblocked), ``source`` (cash, api,
  agent, online, statement). Key ``payment_received:<ledger entry id>``.
* ``promised_expiring``: ``amount``, ``until`` (the day it is taken back: tomorrow),
  ``last_day`` (its last day in force: today), ``balance``. Key
  ``promised_expiring:<promised payment id>``.
* ``service_assigned`` / ``service_bought`` (bought = a purchase: a cabinet request with its
  one-time key, or a platform's upsale whose charge carries the transaction's key):
  ``service_name``, ``account_login``, ``price``, ``period`` (month | day), ``platform`` (or
  null), ``starts_on``, ``ends_on`` (or null). Key ``<event>:<assigned service id>``.
* ``service_ended``: ``service_name``, ``account_login``, ``ended_on`` (the last day in force).
  Key ``service_ended:<assigned service id>`` (ended by staff, replaced, or expired by itself).
"""
from __future__ import annotations

from datetime import date, timedelta
from functools import cache

from sqlalchemy import BigInteger, Date, String, bindparam, cast, literal, select, type_coerce

from ..extensions import db
from ..models import Account, AssignedService, CatalogService, Contract, LedgerEntry, Notice, PromisedPayment, utcnow
from . import clock, driver_sql, notices
from .sqlfrag import amount_text, json_object

_COLUMNS = ["subscriber_id", "contract_id", "account_id", "event", "data", "critical", "dedup_key", "created_at"]


def _now():
    return literal(utcnow(), type_=Notice.__table__.c.created_at.type)


def _key(prefix: str, col):
    return literal(f"{prefix}:") + cast(col, String)


PAYMENT_RECEIVED_COLUMNS = _COLUMNS


def payment_received_row(entry_id, amount, source, balance, subscriber_id, contract_id) -> list:
    """The columns (``PAYMENT_RECEIVED_COLUMNS``) of a ``payment_received`` notice, as SQL over the
    entry's id, amount (kopecks), source and the contract's balance after it (kopecks),
    subscriber and id; parameters paid_at (ISO text) and now. For ``payments_received`` and for
    the ledger's one-statement posting (ledger._insert_and_apply)."""
    data = json_object("amount", amount_text(type_coerce(amount, BigInteger)),
                       "balance", amount_text(type_coerce(balance, BigInteger)),
                       "source", source, "paid_at", bindparam("paid_at", type_=String()))
    return [subscriber_id, contract_id, literal(None), literal("payment_received"), data, literal(False),
            _key("payment_received", entry_id), bindparam("now", type_=Notice.__table__.c.created_at.type)]


def payment_received_params() -> dict:
    """``payment_received_row``'s parameters, for a payment posted now."""
    now = utcnow()
    return {"paid_at": now.isoformat(), "now": now}


@cache
def _payments_received_statement(dialect: str, one: bool = False):
    """``payments_received``'s INSERT ... SELECT, built once per process (parameters: ids, or id
    when ``one``, paid_at, now; per dialect: the INSERT's ON CONFLICT is the dialect's own): on an
    agent's one-payment call, building it cost more than running it. ``one``: a single entry's,
    with a plain parameter, not an expanding IN list (whose rendering at each execution cost
    about 150 Python calls, more than the rest of the statement's execution)."""
    e, c = LedgerEntry.__table__.c, Contract.__table__.c
    rows = (select(*payment_received_row(e.id, e.amount, e.source, c.balance, c.subscriber_id, c.id))
            .select_from(LedgerEntry.__table__.join(Contract.__table__, c.id == e.contract_id))
            .where(e.id == bindparam("id") if one else e.id.in_(bindparam("ids", expanding=True)),
                   e.kind == "payment").order_by(e.id))
    return notices.from_select_statement(_COLUMNS, rows)


def payments_received(entry_ids) -> int:
    """Record ``payment_received`` for these ledger entries (payments only), set-based: one
    statement for a bank statement's thousand payments as for one."""
    ids = list(entry_ids)
    if not ids:
        return 0
    one = len(ids) == 1
    stmt = _payments_received_statement(db.session.get_bind().dialect.name, one)
    if not one:
        return notices.run_insert(stmt, {"ids": ids, **payment_received_params()})
    # (one payment's: by the driver, billing.driver_sql)
    new = [r[0] for r in driver_sql.rows(stmt, {"id": ids[0], **payment_received_params()})]
    notices.remember(new)
    return len(new)


def promised_expiring(today: date | None = None) -> int:
    """The daily pass: ``promised_expiring`` for every promised payment whose last day is today
    (the return job takes it back tomorrow). Reruns record nothing twice."""
    today = today or clock.today()
    p, c = PromisedPayment.__table__.c, Contract.__table__.c
    data = json_object("amount", amount_text(type_coerce(p.amount, BigInteger)),
                       "until", literal((today + timedelta(days=1)).isoformat()),
                       "last_day", literal(today.isoformat()),
                       "balance", amount_text(type_coerce(c.balance, BigInteger)))
    rows = (select(c.subscriber_id, c.id, literal(None), literal("promised_expiring"), data, literal(False),
                   _key("promised_expiring", p.id), _now())
            .select_from(PromisedPayment.__table__.join(Contract.__table__, c.id == p.contract_id))
            .where(p.status == "active", p.until == today).order_by(p.id))
    return notices.insert_from_select(_COLUMNS, rows)


def service_assigned(assigned: AssignedService, *, bought: bool = False) -> bool:
    """``service_bought`` when a purchase assigned it (``bought``: the request carried its
    one-time key or its charge an external key: the cabinet, an upsale callback), else
    ``service_assigned``."""
    event = "service_bought" if bought else "service_assigned"
    account, service = assigned.account, assigned.service
    return notices.record(
        subscriber_id=account.contract.subscriber_id, contract_id=account.contract_id, account_id=account.id,
        event=event, dedup_key=f"{event}:{assigned.id}",
        data={"service_name": service.name, "account_login": account.login, "price": str(service.price),
              "period": service.charge_period, "platform": service.platform,
              "starts_on": assigned.starts_on.isoformat(),
              "ends_on": assigned.ends_on.isoformat() if assigned.ends_on else None})


def service_ended(assigned: AssignedService) -> bool:
    account = assigned.account
    return notices.record(
        subscriber_id=account.contract.subscriber_id, contract_id=account.contract_id, account_id=account.id,
        event="service_ended", dedup_key=f"service_ended:{assigned.id}",
        data={"service_name": assigned.service.name, "account_login": account.login,
              "ended_on": assigned.ends_on.isoformat() if assigned.ends_on else None})


def services_expired(account_ids, run_date: date) -> int:
    """``service_ended`` for the services of these accounts that ended by themselves on
    ``run_date`` (charging.expire_services), set-based."""
    ids = list(account_ids)
    if not ids:
        return 0
    s, a, c, cs = (AssignedService.__table__.c, Account.__table__.c, Contract.__table__.c,
                   CatalogService.__table__.c)
    data = json_object("service_name", cs.name, "account_login", a.login, "ended_on", cast(s.ends_on, String))
    rows = (select(c.subscriber_id, c.id, a.id, literal("service_ended"), data, literal(False),
                   _key("service_ended", s.id), _now())
            .select_from(AssignedService.__table__.join(Account.__table__, a.id == s.account_id)
                         .join(Contract.__table__, c.id == a.contract_id)
                         .join(CatalogService.__table__, cs.id == s.service_id))
            .where(s.account_id.in_(ids), s.state == "ended", s.state_changed_on == literal(run_date, Date()))
            .order_by(s.id))
    return notices.insert_from_select(_COLUMNS, rows)

