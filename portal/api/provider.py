"""The provider protocol over HTTP: payment agents call ``/pay/provider/<agent slug>``
(GET with the query, or POST with the same parameters as a form) with ``command=check`` or
``command=pay`` and get the protocol's XML answer (what each command does, and the result
codes: portal/billing/agent_payments.py).

Who may call is settled first, from the address and headers alone, and nothing is stored for a
caller that fails it (a flood of strangers writes nothing; it is only logged and counted):

* the slug names an agent (else HTTP 404, result 300);
* the caller's address is in the agent's networks (else HTTP 403, result 7). The address is the
  TCP peer's, or the one the trusted proxies forwarded (TRUSTED_PROXIES, portal/proxies.py);
* when the agent has a shared secret: HTTP Basic with the agent's slug as the user name and the
  secret as the password (HTTP 401, result 7), compared in constant time. Not a query
  parameter: queries end up in proxies' access logs. After ``CALLBACK_MAX_FAILURES`` wrong
  secrets from one address within ``CALLBACK_FAILURE_WINDOW`` that address is answered 429
  (result 1, with Retry-After) without its secret being checked (throttle.FailureLimit).

Then the call is carried out and recorded (``ProviderCall``) with our answer, in the
transaction of its effect, or after the rollback in one of its own. While the database cannot
be reached the answer is result 1 (a temporary error: the agent tries again later).
"""
from __future__ import annotations

import hmac
import logging
import time
from collections import namedtuple
from xml.sax.saxutils import escape

from flask import Blueprint, Response, request
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..billing import agent_payments as ap
from ..billing import driver_sql
from ..billing.crypto import decrypt
from ..extensions import csrf, db
from ..models import PaymentAgent
from .throttle import FailureLimit

PREFIX = "/pay/provider"
PARAMS = ("command", "txn_id", "txn_date", "account", "sum")
RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock: run again

bp = Blueprint("provider", __name__, url_prefix=PREFIX)
csrf.exempt(bp)
log = logging.getLogger(__name__)
failures = FailureLimit("provider")


class Refusal(Exception):
    def __init__(self, status: int, answer: ap.Answer, headers: dict | None = None):
        super().__init__(answer.comment)
        self.status, self.answer, self.headers = status, answer, headers or {}


@bp.route("/<slug>", methods=["GET", "POST"])
def call(slug: str):
    started = time.monotonic()
    try:
        agent = _authenticate(slug)
    except Refusal as r:
        log.warning("provider %s: refused call from %s: %s", slug[:40], request.remote_addr, r.answer.comment)
        return _respond(None, r.answer, r.status, r.headers)
    except DBAPIError:
        db.session.rollback()
        log.exception("provider %s: database unavailable", slug[:40])
        return _respond(None, ap.Answer(ap.TEMPORARY, "temporary error, try again later"), 200)
    params = _params()
    answer = _carry_out(agent, params, started)
    return _respond(params.get("txn_id"), answer, 200)


# -- who calls -------------------------------------------------------------------------------------

_secrets: dict = {}  # (agent id, secret_enc) -> secret: one decryption per process and secret


def _secret(agent: PaymentAgent) -> str:
    key = (agent.id, agent.secret_enc)
    if key not in _secrets:
        if len(_secrets) > 1000:
            _secrets.clear()
        _secrets[key] = decrypt(agent.secret_enc)
    return _secrets[key]


def _same(given, expected: str) -> bool:
    """Constant time, for any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(str(given or "").encode(), expected.encode())


# The agent as a plain row (the columns a call reads, as attributes), not an ORM object:
# loading one cost more than the statement on every call. With it, the query's account looked
# up the way the agent names accounts (agent_payments.target_columns): one round trip for both.
# Run by the driver (billing.driver_sql): SQLAlchemy's result for this row built a description
# of each of its columns on every call.
_AGENT_COLUMNS = ("id", "name", "slug", "account_field", "networks", "secret_enc", "min_sum", "max_sum",
                  "fee_percent_bp", "fee_fixed", "fee_withheld", "enabled")
_agents = PaymentAgent.__table__
_AGENT = select(*[_agents.c[n] for n in _AGENT_COLUMNS], *ap.target_columns()) \
    .where(_agents.c.slug == bindparam("slug"))
_AGENT_BY_ID = select(*[_agents.c[n] for n in _AGENT_COLUMNS]).where(_agents.c.id == bindparam("id"))
AgentRow = namedtuple("AgentRow", _AGENT_COLUMNS + tuple(c.key for c in ap.target_columns()))
AgentOnly = namedtuple("AgentOnly", _AGENT_COLUMNS)


def _agent(stmt, params: dict, row_type):
    found = driver_sql.rows(stmt, params)
    return row_type(*found[0]) if found else None


def _authenticate(slug: str) -> PaymentAgent:
    # (the account from the query only: a posted form is not read before the caller is let in)
    agent = _agent(_AGENT, {"slug": slug[:40], "account": request.args.get("account", "")[:64]}, AgentRow) \
        if ap.SLUG_RE.fullmatch(slug) else None
    if agent is None:
        raise Refusal(404, ap.Answer(ap.OTHER, "no such agent"))
    source = request.remote_addr or ""
    if not ap.address_allowed(agent, source):
        raise Refusal(403, ap.Answer(ap.FORBIDDEN, "source address not allowed"))
    if agent.secret_enc:
        wait = failures.wait(source)
        if wait:
            raise Refusal(429, ap.Answer(ap.TEMPORARY, f"too many wrong secrets: retry in {wait} s"),
                          {"Retry-After": str(wait)})
        auth = request.authorization
        if auth is None or auth.type != "basic" or not (
                _same(auth.username, agent.slug) & _same(auth.password, _secret(agent))):
            if auth is not None:  # something was guessed (a call without credentials guesses nothing)
                failures.fail(source)
            raise Refusal(401, ap.Answer(ap.FORBIDDEN, "HTTP Basic credentials required"),
                          {"WWW-Authenticate": f'Basic realm="{agent.slug}"'})
    return agent


# -- the call --------------------------------------------------------------------------------------

def _params() -> dict:
    """The protocol's parameters: the query, or a posted form (the query wins)."""
    out = {k: v for k, v in request.form.items() if k in PARAMS} if request.method == "POST" else {}
    out.update({k: v for k, v in request.args.items() if k in PARAMS})
    return out


def _carry_out(agent: PaymentAgent, params: dict, started: float) -> ap.Answer:
    agent_id, source = agent.id, request.remote_addr or ""
    answer = None
    for attempt in (1, 2):
        try:
            answer = ap.handle(agent, params)
            if answer.result != ap.OK:  # a refused pay may have written nothing that stays
                db.session.rollback()
            ap.record_call(agent_id, source, params, answer, _ms(started))
            db.session.commit()
            return answer
        except DBAPIError as e:
            db.session.rollback()
            if attempt == 1 and (isinstance(e, IntegrityError) or e.connection_invalidated
                                 or getattr(e.orig, "sqlstate", None) in RETRYABLE):
                # lost a race: run again and see what the winner did; or the database dropped the
                # connection (a restart): once more on a new one (a repeated pay moves nothing twice)
                agent = _agent(_AGENT_BY_ID, {"id": agent_id}, AgentOnly)
                continue
            log.exception("provider agent %s: call failed", agent_id)
            answer = ap.Answer(ap.TEMPORARY, "temporary error, try again later", sum=params.get("sum"))
            break
        except Exception:  # noqa: BLE001  (recorded and answered 300; never a call without a record)
            db.session.rollback()
            log.exception("provider %s: call failed", agent_id)
            answer = ap.Answer(ap.OTHER, "internal error: the call was not carried out", sum=params.get("sum"))
            break
    try:
        ap.record_call(agent_id, source, params, answer, _ms(started))
        db.session.commit()
    except DBAPIError:
        db.session.rollback()
        log.warning("provider %s: call not recorded (database unavailable)", agent_id)
    return answer


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _respond(txn_id: str | None, answer: ap.Answer, status: int, headers: dict | None = None) -> Response:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<response>',
             f"<osmp_txn_id>{escape((txn_id or '')[:64])}</osmp_txn_id>"]
    if answer.prv_txn is not None:
        parts.append(f"<prv_txn>{answer.prv_txn}</prv_txn>")
    if answer.sum is not None:
        parts.append(f"<sum>{escape(str(answer.sum)[:32])}</sum>")
    parts.append(f"<result>{answer.result}</result><comment>{escape(answer.comment)}</comment></response>\n")
    response = Response("".join(parts), status=status, content_type="text/xml; charset=utf-8")
    response.headers.update(headers or {})
    return response
