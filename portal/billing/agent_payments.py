"""Payments from payment agents (banks, terminal networks, aggregators) over the provider
protocol ("OSMP", the protocol QIWI terminals made the common one for Russian agents), and
the agents staff define. No HTTP here: portal/api/provider.py reads the call and answers XML.

The protocol, as we implement it:

* ``command=check&txn_id=…&account=…&sum=…``: may this account be paid? 0 when yes (also for
  a blocked account: paying is how it gets unblocked), 4 when ``account`` cannot be one of
  ours, 5 when there is no such account, 7 when payments to it are forbidden (a disabled
  account, a contract whose accounts are all disabled, a disabled agent), 241/242 when
  ``sum`` is below / above the agent's limits. Nothing is written but the call's record.
* ``command=pay&txn_id=…&txn_date=YYYYMMDDHHMMSS&account=…&sum=…``: the payment. The same
  checks, then one ``AgentPayment`` row (unique per agent and ``txn_id``: its id is the
  ``prv_txn`` we answer) and one ledger payment keyed ``agent:<agent id>:<txn_id>`` in one
  transaction. A repeat with the same ``txn_id``, account and sum answers the first
  ``prv_txn`` and moves nothing; with another sum or account it is refused (300) and moves
  nothing; parallel twins meet on the unique key (ON CONFLICT DO NOTHING) and all but one
  find the winner's row.
* ``sum``: digits with an optional point and one or two decimals ("100", "100.5", "100.50");
  the protocol's separator is the point, so "100,50" is a format error (300).
* ``txn_date``: the agent's local time of the payment, 14 digits; read in BILLING_TZ.
* 1 (temporary error, the agent retries later) is answered by the HTTP layer when the database
  cannot be reached; 300 for everything else that is wrong (unknown command, a malformed
  ``txn_id``, ``sum`` or ``txn_date``, a reused ``txn_id``).

The agent's fee (percent and/or fixed) is computed on every payment and kept on its row. By
the usual agent contract the payer pays the agent, the agent passes on the sum and settles its
fee with the operator apart, so the contract is credited the full ``sum``; an agent marked
"fee withheld" credits the sum minus the fee instead.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from sqlalchemy import BigInteger, String, bindparam, delete, func, insert, select, type_coerce

from ..db_setup import dialect_insert
from ..extensions import db
from ..models import ACCOUNT_FIELDS, Account, AgentPayment, Contract, PaymentAgent, ProviderCall, from_minor, utcnow
from ..models.ledger import PAYMENT_AGENT
from . import audit, clock, driver_sql, ledger
from .accounts import LOGIN_RE
from .crypto import encrypt
from .directory import CONTRACT_NUMBER_RE, _raise, _text, _unique
from .errors import BillingError
from .inputs import parse_amount

OK, TEMPORARY, BAD_ACCOUNT, NO_ACCOUNT, FORBIDDEN, TOO_SMALL, TOO_LARGE, OTHER = 0, 1, 4, 5, 7, 241, 242, 300
KEEP_DAYS = 90  # call records older than this are deleted (jobs/payments.py, daily)
TXN_ID_RE = re.compile(r"[0-9A-Za-z_.-]{1,64}")
SUM_RE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
TXN_DATE_RE = re.compile(r"[0-9]{14}")
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
ACTOR_PREFIX = "agent:"


@dataclass
class Answer:
    result: int
    comment: str
    prv_txn: int | None = None
    sum: str | None = None  # as we read it ("100.50"), else as sent


# -- the protocol ----------------------------------------------------------------------------------

def handle(agent: PaymentAgent, params: dict) -> Answer:
    """Answer one call (``params``: name -> text as sent) in the session's transaction."""
    command = params.get("command")
    if command == "check":
        return check(agent, params)
    if command == "pay":
        return pay(agent, params)
    return Answer(OTHER, "unknown command", sum=params.get("sum"))


def _parse_common(agent: PaymentAgent, params: dict) -> tuple[str, Decimal] | Answer:
    raw_sum = params.get("sum") or ""
    txn_id = params.get("txn_id") or ""
    if not TXN_ID_RE.fullmatch(txn_id):
        return Answer(OTHER, "txn_id: 1-64 latin letters, digits, _ . -", sum=raw_sum)
    if not SUM_RE.fullmatch(raw_sum):
        return Answer(OTHER, "sum: a decimal number with a point and at most two decimals", sum=raw_sum)
    amount = Decimal(raw_sum).quantize(Decimal("0.01"))
    if not agent.enabled:
        # a pay repeated after staff disabled the agent still gets its first answer (_refuse)
        return Answer(FORBIDDEN, "this agent is disabled", sum=str(amount))
    return txn_id, amount


def _refuse(agent: PaymentAgent, params: dict, refusal: Answer) -> Answer:
    """``refusal``, unless ``params`` repeat a pay that was taken: then its first answer. An
    agent treats 7 or 241 as final and would write off money we kept."""
    txn_id, account = params.get("txn_id") or "", params.get("account") or ""
    prior = _prior(agent, txn_id) if TXN_ID_RE.fullmatch(txn_id) else None
    if prior is None:
        return refusal
    return _repeat(prior, account, Decimal(refusal.sum or "0")) if refusal.sum else refusal


# A pay's statements, built once per process: building one (and its cache key) cost more
# than running it.
@cache
def _by_number():
    """The contract with this number and how many of its accounts are live and disabled, in one
    round trip."""
    a, c = Account.__table__.c, Contract.__table__.c
    live = select(func.count()).where(a.contract_id == c.id, a.status != "disabled").scalar_subquery()
    dead = select(func.count()).where(a.contract_id == c.id, a.status == "disabled").scalar_subquery()
    return select(c.id, live, dead).where(c.number == bindparam("number"))


@cache
def _by_login():
    a = Account.__table__.c
    return select(a.contract_id, a.status).where(a.login == bindparam("login"))


@cache
def target_columns():
    """``_target``'s two look-ups as columns the HTTP side adds to its SELECT of the agent
    (parameter ``account``: the query's account as sent), so that a pay or check reads its agent
    and its target in one round trip: ``t_account`` (what was looked up), the contract by number
    with its live and disabled accounts, the account by login. Unique-index probes, and only
    read: nothing is answered from them before the caller is authenticated."""
    a, c = Account.__table__.c, Contract.__table__.c
    account = bindparam("account", type_=String())
    by_number = select(c.id).where(c.number == account).scalar_subquery()
    live = select(func.count()).where(a.contract_id == by_number, a.status != "disabled").scalar_subquery()
    dead = select(func.count()).where(a.contract_id == by_number, a.status == "disabled").scalar_subquery()
    login_cid = select(a.contract_id).where(a.login == account).scalar_subquery()
    login_status = select(a.status).where(a.login == account).scalar_subquery()
    return [account.label("t_account"), by_number.label("t_contract_id"), live.label("t_live"),
            dead.label("t_dead"), login_cid.label("t_login_cid"), login_status.label("t_login_status")]


def _prefetched(agent, account: str):
    """The agent row's ``target_columns`` (as attributes) when they were looked up for
    ``account``, else None."""
    if getattr(agent, "t_account", None) != account:
        return None
    return agent


_PAYMENT_COLUMNS = ("agent_id", "txn_id", "txn_date", "account", "contract_id", "amount", "fee", "credited",
                    "created_at")


@cache
def _insert_payment(dialect: str):
    """The payment's row, unless its (agent, txn_id) is taken: returns its id, or no row.
    Parameters: its columns prefixed ``p_`` (it runs inside the ledger's posting statement:
    ledger.post_after)."""
    table = AgentPayment.__table__
    return dialect_insert(table).values({name: bindparam("p_" + name, type_=table.c[name].type)
                                         for name in _PAYMENT_COLUMNS}) \
        .on_conflict_do_nothing(index_elements=["agent_id", "txn_id"]).returning(table.c.id)


def _target(agent: PaymentAgent, account: str, amount: Decimal) -> Contract | Answer:
    """The contract a payment to ``account`` goes to, or the refusal."""
    s = str(amount)
    if agent.account_field == "login":
        if not LOGIN_RE.fullmatch(account):
            return Answer(BAD_ACCOUNT, "account: not a login", sum=s)
        pre = _prefetched(agent, account)
        if pre is None:
            row = db.session.execute(_by_login(), {"login": account}).first()
        else:
            row = None if pre.t_login_cid is None else (pre.t_login_cid, pre.t_login_status)
        if row is None:
            return Answer(NO_ACCOUNT, "account not found", sum=s)
        contract_id, status = row
        if status == "disabled":
            return Answer(FORBIDDEN, "the account is disabled", sum=s)
    else:
        if not CONTRACT_NUMBER_RE.fullmatch(account):
            return Answer(BAD_ACCOUNT, "account: not a contract number", sum=s)
        pre = _prefetched(agent, account)
        if pre is None:
            row = db.session.execute(_by_number(), {"number": account}).first()
        else:
            row = None if pre.t_contract_id is None else (pre.t_contract_id, pre.t_live, pre.t_dead)
        if row is None:
            return Answer(NO_ACCOUNT, "account not found", sum=s)
        contract_id, live_accounts, disabled_accounts = row
        if disabled_accounts and not live_accounts:
            return Answer(FORBIDDEN, "every account of the contract is disabled", sum=s)
    if amount < agent.min_sum:
        return Answer(TOO_SMALL, f"sum below {agent.min_sum}", sum=s)
    if agent.max_sum is not None and amount > agent.max_sum:
        return Answer(TOO_LARGE, f"sum above {agent.max_sum}", sum=s)
    return contract_id


def identifiers_for(contract: Contract) -> list[tuple[str, str, list[str]]]:
    """What a subscriber tells each enabled agent to pay into ``contract`` (the cabinet's "ways to
    pay"): (agent name, its account_field, [the contract number] or the logins of its live
    accounts), as ``_target`` finds them; agents by name."""
    agents = db.session.scalars(select(PaymentAgent).where(PaymentAgent.enabled.is_(True))
                                .order_by(PaymentAgent.name)).all()
    logins = None
    out = []
    for agent in agents:
        if agent.account_field == "login":
            if logins is None:
                logins = db.session.scalars(select(Account.login).where(
                    Account.contract_id == contract.id, Account.status != "disabled").order_by(Account.login)).all()
            if logins:
                out.append((agent.name, agent.account_field, list(logins)))
        else:
            out.append((agent.name, agent.account_field, [contract.number]))
    return out


def check(agent: PaymentAgent, params: dict) -> Answer:
    parsed = _parse_common(agent, params)
    if isinstance(parsed, Answer):
        return parsed
    _txn_id, amount = parsed
    target = _target(agent, params.get("account") or "", amount)
    if isinstance(target, Answer):
        return target
    return Answer(OK, "OK", sum=str(amount))


def fee_of(agent: PaymentAgent, amount: Decimal) -> Decimal:
    """The agent's fee on a payment: its percent (to the kopeck, half up) plus its fixed part."""
    percent = (amount * Decimal(agent.fee_percent_bp or 0) / 10000).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return percent + (agent.fee_fixed or Decimal("0"))


def _repeat(prior: AgentPayment, account: str, amount: Decimal) -> Answer:
    if prior.account != account or prior.amount != amount:
        return Answer(OTHER, f"txn_id already used for another payment (account {prior.account}, "
                             f"sum {prior.amount})", sum=str(amount))
    return Answer(OK, "OK (paid before)", prv_txn=prior.id, sum=str(amount))


def _prior(agent: PaymentAgent, txn_id: str) -> AgentPayment | None:
    return db.session.scalar(select(AgentPayment).where(AgentPayment.agent_id == agent.id,
                                                         AgentPayment.txn_id == txn_id))


def ledger_key(agent_id: int, txn_id: str) -> str:
    """The idempotency key of an agent payment's ledger entry."""
    return f"agent:{agent_id}:{txn_id}"


def parse_txn_date(raw: str) -> datetime | None:
    """YYYYMMDDHHMMSS in the operator's zone -> an aware UTC datetime; None if not a time."""
    if not TXN_DATE_RE.fullmatch(raw or ""):
        return None
    try:
        local = datetime.strptime(raw, "%Y%m%d%H%M%S")
        return local.replace(tzinfo=clock.tz()).astimezone(utcnow().tzinfo)
    except (ValueError, OverflowError):  # year 0001 cannot move to UTC
        return None


def pay(agent: PaymentAgent, params: dict) -> Answer:
    parsed = _parse_common(agent, params)
    if isinstance(parsed, Answer):
        return _refuse(agent, params, parsed) if parsed.result == FORBIDDEN else parsed
    txn_id, amount = parsed
    when = parse_txn_date(params.get("txn_date") or "")
    if when is None:
        return Answer(OTHER, "txn_date: YYYYMMDDHHMMSS", sum=str(amount))
    account = params.get("account") or ""
    target = _target(agent, account, amount)
    if isinstance(target, Answer):
        # a repeat is answered as the first time, even if the account has changed since
        prior = _prior(agent, txn_id)
        return _repeat(prior, account, amount) if prior is not None else target
    fee = fee_of(agent, amount)
    credited = amount - fee if agent.fee_withheld else amount
    if credited <= 0:
        return _refuse(agent, params, Answer(TOO_SMALL, "sum does not cover the agent's fee", sum=str(amount)))
    # the payment's row and its ledger entry, one round trip on PostgreSQL (ledger.post_after); the
    # entry's key names the agent and txn_id (ledger_key): the payment row needs no link back
    row = dict(agent_id=agent.id, txn_id=txn_id, txn_date=when, account=account, contract_id=target,
               amount=amount, fee=fee, credited=credited, created_at=utcnow())
    prv_txn, _entry, _created = ledger.post_after(
        _insert_payment(db.session.get_bind().dialect.name), {"p_" + k: v for k, v in row.items()},
        target, "payment", credited, actor=ACTOR_PREFIX + agent.slug, comment=f"agent {agent.name}, txn {txn_id}",
        idempotency_key=ledger_key(agent.id, txn_id), source=PAYMENT_AGENT, as_id=True)
    if prv_txn is None:  # a repeat, or a parallel twin that committed first
        return _repeat(_prior(agent, txn_id), account, amount)
    return Answer(OK, "OK", prv_txn=prv_txn, sum=str(amount))


# -- the record of calls ---------------------------------------------------------------------------

_CALL_COLUMNS = ("agent_id", "at", "remote_addr", "command", "txn_id", "account", "sum", "txn_date", "result",
                 "comment", "prv_txn", "ms")


@cache
def _record_statement():
    table = ProviderCall.__table__
    return insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in _CALL_COLUMNS})


def record_call(agent_id: int, remote_addr: str, params: dict, answer: Answer, ms: int | None) -> None:
    """Add the call's record to the session's transaction (the caller commits); every field
    cut to its column, so a call cannot store more than a few hundred bytes."""
    command = params.get("command")
    driver_sql.rows(_record_statement(), dict(
        agent_id=agent_id, at=utcnow(), remote_addr=(remote_addr or "")[:64],
        command=command if command in ("check", "pay") else "other",
        txn_id=_cut(params.get("txn_id"), 64), account=_cut(params.get("account"), 64),
        sum=_cut(params.get("sum"), 32), txn_date=_cut(params.get("txn_date"), 32),
        result=answer.result, comment=_cut(answer.comment, 300), prv_txn=answer.prv_txn, ms=ms,
    ))


def _cut(value, n: int) -> str | None:
    return None if value is None else str(value)[:n]


def prune_calls(keep_days: int = KEEP_DAYS) -> int:
    """Delete call records older than ``keep_days``; returns how many went."""
    cutoff = utcnow() - timedelta(days=keep_days)
    return db.session.execute(delete(ProviderCall).where(ProviderCall.at < cutoff)).rowcount or 0


def calls_page(agent: PaymentAgent, q: str = "", result: int | None = None, before: int | None = None,
               limit: int = 50) -> dict:
    """An agent's calls newest first (keyset on id), searched by txn_id or account (prefix) and
    filtered by result."""
    query = select(ProviderCall).where(ProviderCall.agent_id == agent.id).order_by(ProviderCall.id.desc())
    q = (q or "").strip()
    if q:
        query = query.where((ProviderCall.txn_id == q) | (ProviderCall.account == q))
    if result is not None:
        query = query.where(ProviderCall.result == result)
    if before is not None:
        query = query.where(ProviderCall.id < before)
    rows = db.session.scalars(query.limit(limit + 1)).all()
    return {"items": rows[:limit], "next_before": rows[limit - 1].id if len(rows) > limit else None}


def payments_of(calls) -> dict[int, AgentPayment]:
    """prv_txn -> the payment, for the calls shown."""
    ids = {c.prv_txn for c in calls if c.prv_txn}
    if not ids:
        return {}
    return {p.id: p for p in db.session.scalars(select(AgentPayment).where(AgentPayment.id.in_(ids)))}


def totals(agent: PaymentAgent) -> dict:
    """How many payments the agent made, their sum and its fees (kopecks summed in SQL)."""
    c = AgentPayment.__table__.c
    row = db.session.execute(select(func.count(), func.coalesce(func.sum(type_coerce(c.amount, BigInteger)), 0),
                                    func.coalesce(func.sum(type_coerce(c.fee, BigInteger)), 0))
                             .where(c.agent_id == agent.id)).one()
    return {"count": row[0], "amount": from_minor(row[1]), "fee": from_minor(row[2])}


# -- agents (staff) --------------------------------------------------------------------------------

def parse_networks(text: str) -> list:
    """Addresses and CIDR networks, comma or space separated -> ip_network objects (ValueError
    names the bad part)."""
    nets = []
    for part in str(text or "").replace(",", " ").replace(";", " ").split():
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(part) from None
    return nets


_networks_cache: dict = {}


def address_allowed(agent: PaymentAgent, addr: str | None) -> bool:
    """Whether a call from ``addr`` may come from this agent (its networks, parsed once per process)."""
    key = (agent.id, agent.networks)
    nets = _networks_cache.get(key)
    if nets is None:
        if len(_networks_cache) > 1000:
            _networks_cache.clear()
        try:
            nets = _networks_cache[key] = tuple(parse_networks(agent.networks))
        except ValueError:  # stored by an older version, say: an unreadable list lets nobody in
            nets = _networks_cache[key] = ()
    try:
        ip = ipaddress.ip_address((addr or "").split("%")[0])
    except ValueError:
        return False
    return any(ip in net for net in nets)


AGENT_FIELDS = ("name", "slug", "account_field", "networks", "min_sum", "max_sum", "fee_percent", "fee_fixed",
                "fee_withheld", "enabled")


def agent_values(agent: PaymentAgent) -> dict:
    """A stored agent as form values (the secret is never shown back: only whether one is set)."""
    return {"name": agent.name, "slug": agent.slug, "account_field": agent.account_field,
            "networks": agent.networks, "min_sum": str(agent.min_sum),
            "max_sum": "" if agent.max_sum is None else str(agent.max_sum),
            "fee_percent": str(agent.fee_percent.normalize()) if agent.fee_percent_bp else "0",
            "fee_fixed": str(agent.fee_fixed), "fee_withheld": agent.fee_withheld, "enabled": agent.enabled,
            "has_secret": bool(agent.secret_enc)}


def _amount(errors: dict, data: dict, field: str, required: bool = True, positive: bool = False):
    raw = data.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            errors[field] = "required"
        return None
    try:
        value = parse_amount(raw, field)
    except BillingError as e:
        errors.update(e.fields)
        return None
    if positive and value <= 0:
        errors[field] = "must be positive"
    elif value < 0:
        errors[field] = "must not be negative"
    return value


WIDE_NETWORK = 65536  # more addresses than a /16: a secret is required as well


def save_agent(data: dict, *, actor: str, agent: PaymentAgent | None = None) -> PaymentAgent:
    """Create or change a payment agent; BillingError names every bad field, nothing is written
    then. ``secret``: a new shared secret ("" keeps the stored one), ``clear_secret``: drop it."""
    errors: dict = {}
    d = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
    exclude = agent.id if agent else None
    _text(errors, d, "name", 100, required=True)
    if "name" not in errors:
        _unique(errors, PaymentAgent, PaymentAgent.name, d["name"], "name", exclude_id=exclude)
    slug = d.get("slug") or ""
    if not SLUG_RE.fullmatch(slug):
        errors["slug"] = "1-40 lowercase latin letters, digits and -, starting with a letter or digit"
    else:
        _unique(errors, PaymentAgent, PaymentAgent.slug, slug, "slug", exclude_id=exclude)
    if d.get("account_field") not in ACCOUNT_FIELDS:
        errors["account_field"] = f"must be one of: {', '.join(ACCOUNT_FIELDS)}"
    networks = d.get("networks") or ""
    try:
        nets = parse_networks(networks)
    except ValueError as e:
        errors["networks"] = f"not an address or network: {e}"
    else:
        if not nets:
            errors["networks"] = "required: at least one address or network (0.0.0.0/0 for any)"
        elif len(networks) > 1000:
            errors["networks"] = "text up to 1000 characters"
    min_sum = _amount(errors, d, "min_sum", positive=True)
    max_sum = _amount(errors, d, "max_sum", required=False, positive=True)
    if min_sum is not None and max_sum is not None and max_sum < min_sum and "max_sum" not in errors:
        errors["max_sum"] = "must not be below the minimum sum"
    percent = _amount(errors, d, "fee_percent", required=False)
    if percent is not None and "fee_percent" not in errors and percent > 100:
        errors["fee_percent"] = "at most 100"
    fee_fixed = _amount(errors, d, "fee_fixed", required=False)
    secret = data.get("secret") or ""
    if secret and (len(secret) > 200 or "\x00" in secret or secret != secret.strip()):
        errors["secret"] = "up to 200 characters, no spaces at the ends"
    keeps_secret = bool(agent and agent.secret_enc and not data.get("clear_secret"))
    if "networks" not in errors and "secret" not in errors and not (secret or keeps_secret) \
            and any(net.num_addresses > WIDE_NETWORK for net in nets):
        # a wide network is most of the internet: the address alone proves nothing
        errors["secret"] = "required when a network is wider than 65,536 addresses"
    _raise(errors)
    creating = agent is None
    before = None if creating else {k: v for k, v in agent_values(agent).items()}
    agent = agent or PaymentAgent()
    agent.name, agent.slug, agent.account_field, agent.networks = d["name"], slug, d["account_field"], \
        " ".join(str(n) for n in nets)
    agent.min_sum, agent.max_sum = min_sum, max_sum
    agent.fee_percent_bp = int((percent or Decimal("0")) * 100)
    agent.fee_fixed = fee_fixed or Decimal("0")
    agent.fee_withheld, agent.enabled = bool(d.get("fee_withheld")), bool(d.get("enabled"))
    secret_changed = None
    if secret:
        agent.secret_enc, secret_changed = encrypt(secret), "set"
    elif data.get("clear_secret") and agent.secret_enc:
        agent.secret_enc, secret_changed = None, "cleared"
    db.session.add(agent)
    db.session.flush()
    after = agent_values(agent)
    if secret_changed:
        after["secret"] = secret_changed  # the audit says that it changed, never what to
    audit.record(actor, "payment_agent.create" if creating else "payment_agent.update", agent, agent.name,
                 before=before, after=after)
    return agent
