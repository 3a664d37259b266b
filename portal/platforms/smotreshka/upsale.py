"""Upsale v3: what billing does when a subscriber buys in the «Смотрёшка» app (notes 2).

    add-subscription/ensure       check and record: no money moves
    add-subscription/commit       assign, charge once, replay on repeat
    replace-subscription/ensure
    replace-subscription/commit

The HTTP side (the URLs under /upsale/v3, who may call, reading the request, the call record)
is portal/api/upsale.py; here are the protocol's parameters and the two steps as plain
functions: ``ensure``/``commit(kind, params, settings) -> (status, answer)``, or ``Refusal``.

Business outcomes are HTTP 200 with ``result``: ``operation_ensured``, ``operation_commited``
(sic), ``no_action_required``, ``no_sufficient_balance``, ``no_subscription_rules``. Protocol
errors: 422 (a bad or missing parameter, named), 404 (unknown billingTransactionId), 409 (a
qsTransactionId reused with other parameters, or a commit that does not match its ensure).

One qsTransactionId is one transaction, however many ensures arrive at once: the row is
inserted with ON CONFLICT DO NOTHING, and a call that finds it taken answers as a repeat.
"""
from __future__ import annotations

import uuid
from collections import namedtuple
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import joinedload

from ...billing import accounts as acc
from ...billing import clock, driver_sql
from ...db_setup import dialect_insert
from ...extensions import db
from ...models import (
    Account,
    AssignedService,
    CatalogService,
    SmotreshkaUpsale,
    SyncState,
    utcnow,
)
from .. import connections
from . import tv
from .settings import Settings, from_options
from .sync import NAME

ACTOR = "platform:smotreshka"
OPS = {"add-subscription": "add", "replace-subscription": "replace"}
PARAMS = ("accountId", "accountLogin", "newOfferId", "oldOfferId", "qsTransactionId", "trialDays",
          "billingTransactionId", "serviceStartTimestamp")
# what identifies an operation: a repeat of a qsTransactionId must carry the same
IDENTITY = ("accountId", "accountLogin", "newOfferId", "oldOfferId", "trialDays")


# The statements of a call, built once: building one cost about as much as running it. Plain
# INSERTs and UPDATEs, not the ORM's unit of work, which cost more than the rest of a call.
_upsales = SmotreshkaUpsale.__table__
# Everything ensure's checks read, in one round trip (it was nine): the account with its contract
# and services, the offered service (by external id), whether the account's tariffs offer it,
# and the platform's id for the account as we stored it.
_platform_id = select(SyncState.actual["id"].as_string()).where(
    SyncState.account_id == Account.id, SyncState.platform == NAME).scalar_subquery()
CHECKS = (
    select(Account, CatalogService, _platform_id.label("platform_id"),
           CatalogService.id.in_(acc.offered_services_select(Account.id)).label("offered"))
    .outerjoin(CatalogService, and_(CatalogService.platform == NAME, CatalogService.external_id == bindparam("offer")))
    .where(Account.login == bindparam("login"))
    .options(joinedload(Account.contract), joinedload(Account.services).joinedload(AssignedService.service))
)
# The transaction row as plain columns (an ORM object per call cost more than the statement);
# these statements run by the driver on PostgreSQL (billing.driver_sql: compiled once)
BY_QS = select(_upsales).where(_upsales.c.qs_transaction_id == bindparam("qs"))
BY_ID = select(_upsales).where(_upsales.c.id == bindparam("bid"))
TAKE = (update(_upsales).where(_upsales.c.id == bindparam("bid"), _upsales.c.state == "pending")
        .values(state="committing").returning(*_upsales.c))
_COMMITTED_COLUMNS = ("state", "reply", "committed_at", "assigned_service_id")
COMMITTED = update(_upsales).where(_upsales.c.id == bindparam("bid")).values(
    {c: bindparam(c, type_=_upsales.c[c].type) for c in _COMMITTED_COLUMNS})
_INSERTED_COLUMNS = ("id", "qs_transaction_id", "kind", "account_id", "new_service_id", "old_service_id", "params",
                     "trial_days", "amount_quoted", "state", "created_at", "expires_at")
Txn = namedtuple("Txn", [c.name for c in _upsales.c])


def _txn(stmt, params: dict) -> Txn | None:
    """The transaction's row from ``stmt`` (a read, or TAKE's RETURNING), or None."""
    found = driver_sql.rows(stmt, params)
    return Txn(*found[0]) if found else None


def _finish(txn_id: str, state: str, reply: dict, committed_at=None, assigned_service_id=None) -> None:
    driver_sql.rows(COMMITTED, {"bid": txn_id, "state": state, "reply": reply, "committed_at": committed_at,
                                "assigned_service_id": assigned_service_id})


class Refusal(Exception):
    """A call we do not carry out: its HTTP status and ``{"error", "field"}`` answer."""

    def __init__(self, status: int, error: str, field: str | None = None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.field, self.headers = status, error, field, headers or {}

    @property
    def answer(self) -> dict:
        return {"error": self.error, **({"field": self.field} if self.field else {})}


def connection():
    """The stored connection (connections.Stored: enabled, login, password, ...) and its
    settings, parsed once per version of the row; (None, None) when there is none."""
    stored = connections.current(NAME)
    if stored is None:
        return None, None
    if "settings" not in stored.derived:
        stored.derived["settings"] = from_options(stored.options)
    return stored, stored.derived["settings"]


def params(raw: dict) -> dict:
    """The operation's parameters from ``raw`` (name -> value, as the caller sent them):
    stripped strings, the required ones present, lengths and numbers checked."""
    out = {k: str(raw[k]).strip() for k in PARAMS if raw.get(k) is not None and str(raw[k]).strip() != ""}
    for k in ("accountId", "accountLogin", "newOfferId", "qsTransactionId"):
        if not out.get(k):
            raise Refusal(422, f"{k} is required", k)
    if len(out["qsTransactionId"]) > 255:
        raise Refusal(422, "qsTransactionId: at most 255 characters", "qsTransactionId")
    trial = out.get("trialDays", "0")
    if not trial.isdigit() or int(trial) > 3660:
        raise Refusal(422, "trialDays must be a whole number of days", "trialDays")
    out["trialDays"] = str(int(trial))
    return out


# -- ensure -------------------------------------------------------------------------------------

def _identity(params: dict) -> dict:
    return {k: params.get(k) for k in IDENTITY}


def _resolve(kind: str, params: dict, settings) -> tuple[str, dict | tuple]:
    """The business checks: ('refused', answer) or ('ok', (account, new, old assigned, quote))."""
    login = settings.login_of(params["accountLogin"])
    row = db.session.execute(CHECKS, {"login": login, "offer": params["newOfferId"]}).unique().first() \
        if login else None
    if row is None:
        return "refused", {"result": "no_subscription_rules"}
    account, new, known, offered = row
    if known and known != params["accountId"]:
        return "refused", {"result": "no_subscription_rules"}
    if new is None or not offered or account.status in ("inactive", "disabled"):
        return "refused", {"result": "no_subscription_rules"}
    if account.status == "blocked":
        if account.reasons == ["balance"]:
            return "refused", {"result": "no_sufficient_balance"}
        return "refused", {"result": "no_subscription_rules"}
    old = None
    if kind == "replace":
        if not params.get("oldOfferId"):
            raise Refusal(422, "oldOfferId is required", "oldOfferId")
        old_service = tv.by_external_id(params["oldOfferId"])
        if old_service is None:
            return "refused", {"result": "no_subscription_rules"}
        old = tv.holding(account, old_service)
    held = tv.holding(account, new)
    if held is not None and old is None:
        return "refused", {"result": "no_action_required"}
    if kind == "add" and new.iptv_kind == "basic":
        old = tv.current_basic(account)  # a second basic replaces the first
    quote = tv.quote(account, new, old, trial_days=int(params["trialDays"]))
    if not tv.affordable(account, quote):
        return "refused", {"result": "no_sufficient_balance"}
    return "ok", (account, new, old, quote.charge)


@cache
def _insert_once(dialect: str):
    """INSERT of a transaction that does nothing when its qsTransactionId is taken (a parallel
    ensure won): no unique violation, so nothing to roll back and no 500. It returns the id it
    inserted, or no row (psycopg reports no rowcount for it)."""
    return (dialect_insert(_upsales)
            .values({c: bindparam(c, type_=_upsales.c[c].type) for c in _INSERTED_COLUMNS})
            .on_conflict_do_nothing(index_elements=["qs_transaction_id"]).returning(_upsales.c.id))


def _repeat(existing, kind: str, params: dict) -> tuple[int, dict]:
    """The answer to an ensure whose qsTransactionId is already recorded."""
    if existing.params != _identity(params) or existing.kind != kind:
        raise Refusal(409, "qsTransactionId already used with other parameters", "qsTransactionId")
    if existing.state == "committed":
        return 200, dict(existing.reply)
    return 200, {"result": "operation_ensured", "billingTransactionId": existing.id}


def _recorded(params: dict) -> Txn | None:
    return _txn(BY_QS, {"qs": params["qsTransactionId"]})


def ensure(kind: str, params: dict, settings: Settings) -> tuple[int, dict]:
    # The checks first and the transaction's row after (a first ensure, the common call, reads
    # no row: its INSERT finds a repeat). A repeat is answered as the first time whatever the
    # checks say now, so a refusal looks for a recorded transaction before it is answered.
    try:
        outcome, data = _resolve(kind, params, settings)
    except Refusal:
        existing = _recorded(params)
        if existing is not None:
            return _repeat(existing, kind, params)
        raise
    if outcome == "refused":
        existing = _recorded(params)
        return _repeat(existing, kind, params) if existing is not None else (200, data)
    account, new, old, quote = data
    txn_id, now = str(uuid.uuid4()), utcnow()
    added = driver_sql.rows(_insert_once(db.session.get_bind().dialect.name), dict(
        id=txn_id, qs_transaction_id=params["qsTransactionId"], kind=kind, account_id=account.id,
        new_service_id=new.id, old_service_id=old.service_id if old else None, params=_identity(params),
        trial_days=int(params["trialDays"]), amount_quoted=quote, state="pending", created_at=now,
        expires_at=now + timedelta(seconds=settings.upsale_ttl)))
    if not added:
        # A repeat, or the INSERT waited for the parallel ensure that took the key to commit; the
        # row is visible now (a new statement's snapshot), and this call is a repeat of it.
        return _repeat(_recorded(params), kind, params)
    return 200, {"result": "operation_ensured", "billingTransactionId": txn_id}


# -- commit -------------------------------------------------------------------------------------

def _start(params: dict) -> datetime:
    raw = params.get("serviceStartTimestamp")
    if raw:
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if value.tzinfo is not None:
                return value.astimezone(clock.tz())
        except ValueError:
            raise Refusal(422, "serviceStartTimestamp must be an ISO 8601 date-time", "serviceStartTimestamp") \
                from None
    return datetime.now(clock.tz())


def commit(kind: str, params: dict, settings: Settings) -> tuple[int, dict]:
    bid = params.get("billingTransactionId")
    try:
        bid = str(uuid.UUID(bid or ""))
    except ValueError:
        raise Refusal(422, "billingTransactionId must be the UUID ensure returned", "billingTransactionId") from None
    start = _start(params)
    # Take the transaction: a compare-and-set, so of two commits at once exactly one does the work
    # (the other waits on the row lock, then finds it taken and replays the answer).
    # (RETURNING loads the row it took in the same statement; otherwise one plain read)
    txn = _txn(TAKE, {"bid": bid})
    taken = txn is not None
    if txn is None:
        txn = _txn(BY_ID, {"bid": bid})
    if txn is None:
        raise Refusal(404, "Transaction not found", "billingTransactionId")
    if txn.qs_transaction_id != params["qsTransactionId"] or txn.kind != kind or \
            txn.params.get("newOfferId") != params["newOfferId"]:
        raise Refusal(409, "the commit does not match its ensure", "qsTransactionId")
    if not taken:
        return 200, dict(txn.reply or {"result": "operation_commited", "billingTransactionId": txn.id})
    # One live copy per account: under the account's lock, an offer bought meanwhile by another
    # transaction (a second purchase in the app) is no purchase at all; this one ends refused.
    # (The account, its contract locked, its services and the service: one round trip.)
    account, service = acc.locked_with_service(txn.account_id, txn.new_service_id)
    old = next((s for s in tv.live(account) if s.service_id == txn.old_service_id), None) \
        if txn.old_service_id else None
    if txn.expires_at < utcnow():  # too late: the checks again; a refusal is final for this transaction
        outcome, data = _resolve(kind, {**txn.params, "qsTransactionId": txn.qs_transaction_id}, settings)
        if outcome == "refused":
            _finish(txn.id, "refused", data)
            return 200, dict(data)
        _, _, old, _ = data
    if tv.holding(account, service) is not None:
        reply = {"result": "no_action_required"}
        _finish(txn.id, "refused", reply)
        return 200, dict(reply)
    # The charge is posted as billing's charge for the change, keyed by this transaction as it
    # is written: the ledger itself refuses a second charge for it.
    assigned = tv.change(account, add=service, remove=old, actor=ACTOR, trial_days=txn.trial_days,
                         charge_key=(f"upsale:{txn.id}", f"upsale {txn.qs_transaction_id}"[:200]))
    if txn.trial_days:
        start = max(start, datetime.combine(assigned.starts_on, datetime.min.time(), tzinfo=clock.tz()))
    reply = {"result": "operation_commited", "billingTransactionId": txn.id,
             "billingStartTimestamp": start.replace(microsecond=0).isoformat()}
    _finish(txn.id, "committed", reply, utcnow(), assigned.id)
    return 200, dict(reply)
