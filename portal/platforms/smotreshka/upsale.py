"""Upsale v3: the platform calls us when a subscriber buys in the «Смотрёшка» app (notes 2).

    POST /upsale/v3/add-subscription/ensure       check and record: no money moves
    POST /upsale/v3/add-subscription/commit       assign, charge once, replay on repeat
    POST /upsale/v3/replace-subscription/ensure
    POST /upsale/v3/replace-subscription/commit

Parameters come in the query string (a form or JSON body may carry them too; the query wins);
the optional JSON body is the "upsale request context", kept for audit only. Business outcomes
are HTTP 200 with ``result``: ``operation_ensured``, ``operation_commited`` (sic),
``no_action_required``, ``no_sufficient_balance``, ``no_subscription_rules``. Protocol errors:
422 (a bad or missing parameter, named), 404 (unknown billingTransactionId), 409 (a
qsTransactionId reused with other parameters, or a commit that does not match its ensure).

Callers: only from the connection's ``upsale_allowed_ips`` (403 otherwise) and, when the
connection has a login, with that login and password as HTTP Basic (401 otherwise). Every call
and our answer is stored (``SmotreshkaCall``) in the same transaction as its effect.
"""
from __future__ import annotations

import hmac
import time
import uuid
from datetime import datetime, timedelta

from flask import Blueprint, jsonify, request
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.orm import joinedload

from ...billing import accounts as acc
from ...billing import clock
from ...billing.crypto import decrypt
from ...billing.errors import BillingError
from ...extensions import csrf, db
from ...models import (
    Account, AssignedService, CatalogService, LedgerEntry, PlatformConnection, SmotreshkaCall, SmotreshkaUpsale, SyncState,
    utcnow,
)
from . import tv
from .settings import from_options
from .sync import NAME

bp = Blueprint("smotreshka_upsale", __name__, url_prefix="/upsale/v3")
csrf.exempt(bp)

ACTOR = "platform:smotreshka"
OPS = {"add-subscription": "add", "replace-subscription": "replace"}
PARAMS = ("accountId", "accountLogin", "newOfferId", "oldOfferId", "qsTransactionId", "trialDays",
          "billingTransactionId", "serviceStartTimestamp")
# what identifies an operation: a repeat of a qsTransactionId must carry the same
IDENTITY = ("accountId", "accountLogin", "newOfferId", "oldOfferId", "trialDays")


# The statements of a call, built once: building one cost about as much as running it. Plain
# INSERTs and UPDATEs, not the ORM's unit of work, which cost more than the rest of a call.
_calls, _upsales = SmotreshkaCall.__table__, SmotreshkaUpsale.__table__
_conn = PlatformConnection.__table__.c
CONNECTION = select(_conn.id, _conn.enabled, _conn.login, _conn.password_enc, _conn.options).where(
    _conn.kind == NAME)
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
# the account and the service a commit assigns, in one round trip
ACCOUNT_AND_SERVICE = (select(Account, CatalogService).join(CatalogService, CatalogService.id == bindparam("sid"))
                       .where(Account.id == bindparam("aid")))
BY_QS = select(SmotreshkaUpsale).where(SmotreshkaUpsale.qs_transaction_id == bindparam("qs"))
TAKE = (update(SmotreshkaUpsale).where(SmotreshkaUpsale.id == bindparam("bid"), SmotreshkaUpsale.state == "pending")
        .values(state="committing").returning(SmotreshkaUpsale)
        .execution_options(synchronize_session=False, populate_existing=True))
_led = LedgerEntry.__table__.c  # (table columns: an ORM-enabled UPDATE would fetch the rows first)
_first_charge = select(func.min(_led.id)).where(
    _led.assigned_service_id == bindparam("assigned_id"), _led.kind == "charge",
    _led.idempotency_key.is_(None)).scalar_subquery()
KEY_CHARGE = (update(LedgerEntry.__table__).where(_led.id == _first_charge)
              .values(idempotency_key=bindparam("key"), comment=func.coalesce(_led.comment, "") + bindparam("note")))
COMMITTED = update(_upsales).where(_upsales.c.id == bindparam("bid"))


class Refusal(Exception):
    def __init__(self, status: int, error: str, field: str | None = None):
        self.status, self.error, self.field = status, error, field


@bp.route("/<op>/<step>", methods=["POST"])
def upsale(op: str, step: str):
    started = time.monotonic()
    body = request.get_json(silent=True) if request.is_json else None
    query = {k: v for k, v in request.args.items()}
    endpoint = f"{op}/{step}"
    txn_id = None
    try:
        if op not in OPS or step not in ("ensure", "commit"):
            raise Refusal(404, "no such upsale operation")
        settings, row = _authenticate()
        params = _params(query, body)
        kind = OPS[op]
        if step == "ensure":
            status, answer = 200, ensure(kind, params, settings)
        else:
            status, answer = 200, commit(kind, params, settings)
        txn_id = answer.get("billingTransactionId")
    except Refusal as r:
        db.session.rollback()
        status, answer = r.status, {"error": r.error, **({"field": r.field} if r.field else {})}
    except BillingError as e:
        db.session.rollback()
        status, answer = 422, {"error": "; ".join(f"{k}: {v}" for k, v in e.fields.items())}
    db.session.execute(insert(_calls), dict(
        at=utcnow(), endpoint=endpoint[:64], remote_addr=(request.remote_addr or "")[:64], query=query,
        body=body if isinstance(body, dict) else None, status=status, answer=answer,
        result=answer.get("result"), transaction_id=txn_id or query.get("billingTransactionId", "")[:36] or None,
        ms=round((time.monotonic() - started) * 1000)))
    db.session.commit()
    response = jsonify(answer)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="upsale"'
    return response


# -- who calls ------------------------------------------------------------------------------------

_credentials: dict = {}  # (connection id, password_enc) -> password: one decryption per process and password


def _authenticate():
    row = db.session.execute(CONNECTION).first()
    if row is None or not row.enabled:
        raise Refusal(503, "upsale is not configured")
    settings = from_options(row.options)
    if not settings.ip_allowed(request.remote_addr):
        raise Refusal(403, "source address not allowed")
    if row.login:
        auth = request.authorization
        key = (row.id, row.password_enc)
        if key not in _credentials:
            _credentials.clear()  # a changed password forgets the old one
            _credentials[key] = decrypt(row.password_enc) if row.password_enc else ""
        password = _credentials[key]
        if auth is None or auth.type != "basic" or not (
                hmac.compare_digest(str(auth.username or ""), row.login)
                and hmac.compare_digest(str(auth.password or ""), password)):
            raise Refusal(401, "HTTP Basic credentials required")
    return settings, row


def _params(query: dict, body) -> dict:
    merged: dict = {}
    if isinstance(body, dict):
        merged.update({k: body[k] for k in PARAMS if k in body and body[k] is not None})
    merged.update({k: v for k, v in request.form.items() if k in PARAMS})
    merged.update({k: v for k, v in query.items() if k in PARAMS})
    out = {k: str(v).strip() for k, v in merged.items() if str(v).strip() != ""}
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
    quote = tv.first_charge(new) if int(params["trialDays"]) == 0 else 0
    if not tv.affordable(account, quote):
        return "refused", {"result": "no_sufficient_balance"}
    return "ok", (account, new, old, quote)


def ensure(kind: str, params: dict, settings) -> dict:
    existing = db.session.scalar(BY_QS, {"qs": params["qsTransactionId"]})
    if existing is not None:
        if existing.params != _identity(params) or existing.kind != kind:
            raise Refusal(409, "qsTransactionId already used with other parameters", "qsTransactionId")
        if existing.state == "committed":
            return dict(existing.reply)
        return {"result": "operation_ensured", "billingTransactionId": existing.id}
    outcome, data = _resolve(kind, params, settings)
    if outcome == "refused":
        return data
    account, new, old, quote = data
    txn_id, now = str(uuid.uuid4()), utcnow()
    db.session.execute(insert(_upsales), dict(
        id=txn_id, qs_transaction_id=params["qsTransactionId"], kind=kind, account_id=account.id,
        new_service_id=new.id, old_service_id=old.service_id if old else None, params=_identity(params),
        trial_days=int(params["trialDays"]), amount_quoted=quote, state="pending", created_at=now,
        expires_at=now + timedelta(seconds=settings.upsale_ttl)))
    return {"result": "operation_ensured", "billingTransactionId": txn_id}


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


def commit(kind: str, params: dict, settings) -> dict:
    bid = params.get("billingTransactionId")
    try:
        bid = str(uuid.UUID(bid or ""))
    except ValueError:
        raise Refusal(422, "billingTransactionId must be the UUID ensure returned", "billingTransactionId") from None
    start = _start(params)
    # Take the transaction: a compare-and-set, so of two commits at once exactly one does the work
    # (the other waits on the row lock, then finds it taken and replays the answer).
    # (RETURNING loads the row it took in the same statement; otherwise one plain read)
    txn = db.session.scalar(TAKE, {"bid": bid})
    taken = txn is not None
    if txn is None:
        txn = db.session.get(SmotreshkaUpsale, bid, populate_existing=True)
    if txn is None:
        raise Refusal(404, "Transaction not found", "billingTransactionId")
    if txn.qs_transaction_id != params["qsTransactionId"] or txn.kind != kind or \
            txn.params.get("newOfferId") != params["newOfferId"]:
        raise Refusal(409, "the commit does not match its ensure", "qsTransactionId")
    if not taken:
        return dict(txn.reply or {"result": "operation_commited", "billingTransactionId": txn.id})
    account, service = db.session.execute(ACCOUNT_AND_SERVICE,
                                          {"aid": txn.account_id, "sid": txn.new_service_id}).one()
    old = next((s for s in tv.live(account) if s.service_id == txn.old_service_id), None) \
        if txn.old_service_id else None
    if txn.expires_at < utcnow():  # too late: the checks again; a refusal is final for this transaction
        outcome, data = _resolve(kind, {**txn.params, "qsTransactionId": txn.qs_transaction_id}, settings)
        if outcome == "refused":
            txn.state, txn.reply = "refused", data
            return dict(data)
        _, _, old, _ = data
    assigned = tv.change(account, add=service, remove=old, actor=ACTOR, trial_days=txn.trial_days)
    db.session.flush()
    # Assigning the service posted its first charge (billing's charge for a change); key it by the
    # transaction, so the ledger itself refuses a second charge for it.
    db.session.execute(KEY_CHARGE, {"assigned_id": assigned.id, "key": f"upsale:{txn.id}",
                                    "note": f" (upsale {txn.qs_transaction_id})"[:200]})
    if txn.trial_days:
        start = max(start, datetime.combine(assigned.starts_on, datetime.min.time(), tzinfo=clock.tz()))
    reply = {"result": "operation_commited", "billingTransactionId": txn.id,
             "billingStartTimestamp": start.replace(microsecond=0).isoformat()}
    db.session.execute(COMMITTED, {"bid": txn.id, "state": "committed", "reply": reply, "committed_at": utcnow(),
                                   "assigned_service_id": assigned.id})
    return dict(reply)
