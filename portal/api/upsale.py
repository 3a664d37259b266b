"""Upsale v3 over HTTP: the «Смотрёшка» platform calls these when a subscriber buys in its app
(the protocol, and what billing does, are in portal/platforms/smotreshka/upsale.py).

    POST /upsale/v3/add-subscription/ensure
    POST /upsale/v3/add-subscription/commit
    POST /upsale/v3/replace-subscription/ensure
    POST /upsale/v3/replace-subscription/commit

Who may call is settled first, from the caller's address and headers alone: an address in the
connection's ``upsale_allowed_ips`` (403), not more than ``CALLBACK_MAX_FAILURES`` wrong
credentials from that address lately (429 with Retry-After, the password unchecked;
throttle.py), and, when the connection has a login, that login and password as HTTP Basic
(401). The address is the TCP peer's, or the one trusted proxies forwarded (proxies.py).

Then the request is read: parameters from the query string (a form or JSON body may carry them
too; the query wins); the optional JSON body is the "upsale request context", kept for audit.

Every call is recorded (``SmotreshkaCall``) with our answer. An accepted call is recorded in the
transaction of its effect, or, when that failed, in one of its own after the rollback. A refused
call leaves a bounded record: address, time, endpoint, status, answer and at most the first
kilobyte of its query; its body is neither parsed nor kept. A body over MAX_CONTENT_LENGTH is
answered 413 (portal.register_size_limit, then ``too_large``).
"""
from __future__ import annotations

import hmac
import logging
import time

from flask import Blueprint, jsonify, request
from sqlalchemy import bindparam, insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..billing import driver_sql
from ..billing.errors import BillingError
from ..extensions import csrf, db
from ..models import SmotreshkaCall, utcnow
from ..platforms.smotreshka import upsale
from ..platforms.smotreshka.upsale import Refusal
from .throttle import FailureLimit

PREFIX = "/upsale/v3"
STEPS = ("ensure", "commit")
RECORD_LIMIT = 1024  # characters of a refused call's query that are kept
# SQLSTATEs of a transaction that lost a race and may simply run again
RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock

bp = Blueprint("upsale", __name__, url_prefix=PREFIX)
csrf.exempt(bp)
log = logging.getLogger(__name__)
failures = FailureLimit("upsale")
# Refused calls are recorded per source up to CALLBACK_MAX_REFUSED_RECORDS in the same window;
# past it they are only counted and logged, so that a stranger's flood cannot fill the calls table.
refusals = FailureLimit("upsale-refused", "CALLBACK_MAX_REFUSED_RECORDS")
# a plain INSERT, run by the driver on PostgreSQL (driver_sql): the ORM's unit of work cost more than the call
_calls = SmotreshkaCall.__table__
_RECORD = insert(_calls).values({c.name: bindparam(c.name, type_=c.type) for c in _calls.c if c.name != "id"})


@bp.route("/<op>/<step>", methods=["POST"])
def call(op: str, step: str):
    started = time.monotonic()
    try:
        if op not in upsale.OPS or step not in STEPS:
            raise Refusal(404, "no such upsale operation")
        settings = _authenticate()
    except Refusal as r:
        _record_refusal(r.status, r.answer, started)
        return _respond(r.status, r.answer, r.headers)
    # only a caller let in gets its body read (its size is checked already: register_size_limit)
    body = request.get_json(silent=True) if request.is_json else None
    body = body if isinstance(body, dict) else None
    status, answer = _carry_out(op, step, _raw(body), body, settings, started)
    return _respond(status, answer)


def too_large(error):
    """413 for a body over MAX_CONTENT_LENGTH: the protocol's error shape, and a bounded
    record when the call named an endpoint of ours."""
    answer = {"error": f"the request body is over {request.max_content_length} bytes"}
    if request.blueprint == bp.name:
        db.session.rollback()
        _record_refusal(413, answer, time.monotonic())
    return _respond(413, answer)


# -- who calls ------------------------------------------------------------------------------------

def _same(given, expected: str) -> bool:
    """A constant-time comparison that takes any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(str(given or "").encode(), expected.encode())


def _authenticate():
    """The connection's settings, if this caller may call; Refusal otherwise."""
    row, settings = upsale.connection()
    if row is None or not row.enabled:
        raise Refusal(503, "upsale is not configured")
    source = request.remote_addr or ""
    if not settings.ip_allowed(source):
        raise Refusal(403, "source address not allowed")
    if row.login:
        wait = failures.wait(source)
        if wait:
            raise Refusal(429, f"too many wrong credentials from this address: retry in {wait} s",
                          headers={"Retry-After": str(wait)})
        auth = request.authorization
        if auth is None or auth.type != "basic" or not (
                _same(auth.username, row.login) and _same(auth.password, row.password)):
            if auth is not None:  # credentials were tried (a call without any guesses nothing)
                failures.fail(source)
            raise Refusal(401, "HTTP Basic credentials required", headers={"WWW-Authenticate": 'Basic realm="upsale"'})
    return settings


# -- the call -------------------------------------------------------------------------------------

def _raw(body: dict | None) -> dict:
    """Parameter name -> value as sent: the JSON body, then the form, then the query, the later winning."""
    raw: dict = {}
    if body:
        raw.update({k: body[k] for k in upsale.PARAMS if k in body})
    raw.update({k: v for k, v in request.form.items() if k in upsale.PARAMS})
    raw.update({k: v for k, v in request.args.items() if k in upsale.PARAMS})
    return raw


def _carry_out(op: str, step: str, raw: dict, body: dict | None, settings, started: float) -> tuple[int, dict]:
    """Run the step; record the call with its effect, or after rolling the effect back."""
    run = upsale.ensure if step == "ensure" else upsale.commit
    for attempt in (1, 2):
        try:
            status, answer = run(upsale.OPS[op], upsale.params(raw), settings)
            _record(status, answer, started, body=body)
            db.session.commit()
            return status, answer
        except Refusal as r:
            status, answer = r.status, r.answer
        except BillingError as e:
            status, answer = 422, {"error": "; ".join(f"{k}: {v}" for k, v in e.fields.items())}
        except DBAPIError as e:
            db.session.rollback()
            if attempt == 1 and (isinstance(e, IntegrityError) or e.connection_invalidated
                                 or getattr(e.orig, "sqlstate", None) in RETRYABLE):
                # a parallel call won a race: run again, and see what it did; or the database
                # dropped the connection (a restart): once more on a new one (a step is idempotent)
                continue
            log.exception("upsale %s/%s failed", op, step)
            status, answer = 500, {"error": "internal error: the call was not carried out"}
        except Exception:  # noqa: BLE001  (recorded and answered; never a call without a record)
            log.exception("upsale %s/%s failed", op, step)
            status, answer = 500, {"error": "internal error: the call was not carried out"}
        break
    db.session.rollback()
    _record(status, answer, started, body=body)
    db.session.commit()
    return status, answer


def _bounded(pairs, limit: int = RECORD_LIMIT) -> dict:
    """At most ``limit`` characters of name/value pairs, in the order sent."""
    out: dict = {}
    for name, value in pairs:
        if limit <= 0:
            break
        name = name[:limit]
        out[name] = value[:max(0, limit - len(name))]
        limit -= len(name) + len(out[name])
    return out


def _record(status: int, answer: dict, started: float, body: dict | None = None, refused: bool = False) -> None:
    """Add the call record to the session's transaction (the caller commits). A refused call's
    query is bounded and its body not kept."""
    query = _bounded(request.args.items()) if refused else request.args.to_dict()
    endpoint = (request.view_args or {})
    driver_sql.rows(_RECORD, dict(
        at=utcnow(), endpoint=f"{endpoint.get('op', '')}/{endpoint.get('step', '')}"[:64],
        remote_addr=(request.remote_addr or "")[:64], query=query, body=None if refused else body, status=status,
        answer=answer, result=answer.get("result"),
        transaction_id=answer.get("billingTransactionId") or query.get("billingTransactionId", "")[:36] or None,
        ms=round((time.monotonic() - started) * 1000)))


def _record_refusal(status: int, answer: dict, started: float) -> None:
    """A bounded record of a refused call, while its source is under the limit (see refusals)."""
    source = request.remote_addr or ""
    if refusals.wait(source):
        log.warning("upsale: refused call from %s not recorded (%s, too many refused)", source, status)
    else:
        _record(status, answer, started, refused=True)
        db.session.commit()
    refusals.fail(source)


def _respond(status: int, answer: dict, headers: dict | None = None):
    response = jsonify(answer)
    response.status_code = status
    response.headers.update(headers or {})
    return response
