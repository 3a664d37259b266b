"""Creating and changing subscribers, contracts, agents, catalog services, tariffs and
extra-field definitions, with the validation that names each bad field."""
from __future__ import annotations

import re
import secrets
from decimal import Decimal

from sqlalchemy import func, select, update

from ..extensions import db
from ..models import (
    AGENT_KINDS,
    CHARGE_MODES,
    CHARGE_PERIODS,
    EXTRA_FIELD_TYPES,
    IPTV_KINDS,
    SUBSCRIBER_KINDS,
    TARIFF_KINDS,
    Agent,
    CatalogService,
    Contract,
    ExtraFieldDefinition,
    NotificationPreference,
    Subscriber,
    Tariff,
)
from ..models.subscribers import SUBSCRIBER_LANGUAGES
from . import audit
from .errors import BillingError, NotFound
from .inputs import check_text, parse_amount

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+?[0-9 ()-]{5,20}$")
CONTRACT_NUMBER_RE = re.compile(r"[0-9A-Za-zА-Яа-я/._-]{1,32}")  # what a contract number may be


def get_or_404(model, ident, field: str):
    obj = db.session.get(model, ident) if isinstance(ident, int) else None
    if obj is None:
        raise NotFound({field: "not found"})
    return obj


def _stripped(data: dict) -> dict:
    """Text values as they will be stored (trimmed), so checks see the same thing."""
    return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}


def _choice(errors: dict, data: dict, field: str, choices, required=True):
    value = data.get(field)
    if value is None and not required:
        return
    if value not in choices:
        errors[field] = f"must be one of: {', '.join(choices)}"


def _text(errors: dict, data: dict, field: str, max_len: int, required=False):
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[field] = "required"
        return
    problems = check_text(value, field, max_len)
    if problems:
        errors[field] = problems[0]


def _unique(errors: dict, model, column, value, field: str, exclude_id=None):
    if value is None:
        return
    q = select(func.count()).select_from(model).where(column == value)
    if exclude_id is not None:
        q = q.where(model.id != exclude_id)
    if db.session.scalar(q):
        errors[field] = "already taken"


def _money(errors: dict, data: dict, field: str) -> Decimal | None:
    """A non-negative amount, or None with the error recorded under the field's name."""
    try:
        amount = parse_amount(data.get(field), field)
    except BillingError as e:
        errors.update(e.fields)
        return None
    if amount < 0:
        errors[field] = "must not be negative"
    return amount


def _raise(errors: dict):
    if errors:
        raise BillingError(errors)


# -- subscribers and contracts ------------------------------------------------------------

SUBSCRIBER_FIELDS = ("kind", "full_name", "phones", "email", "postal_address", "notes", "cabinet_login", "inn",
                     "bank_account", "language")
# a bank statement's payer is matched by them (portal.billing.statements)
INN_RE = re.compile(r"^(\d{10}|\d{12})$")
BANK_ACCOUNT_RE = re.compile(r"^\d{20}$")


def save_subscriber(data: dict, *, actor: str, subscriber: Subscriber | None = None) -> Subscriber:
    """Create (subscriber=None) or update a subscriber card from a dict of fields."""
    creating = subscriber is None
    merged = {f: getattr(subscriber, f) for f in SUBSCRIBER_FIELDS} if subscriber else {"kind": "person",
                                                                                          "language": "ru"}
    merged.update({k: v for k, v in data.items() if k in SUBSCRIBER_FIELDS or k == "cabinet_password"})
    errors: dict = {}
    _choice(errors, merged, "kind", SUBSCRIBER_KINDS)
    _choice(errors, merged, "language", SUBSCRIBER_LANGUAGES)  # their messages' and cabinet's
    _text(errors, merged, "full_name", 300, required=True)
    phones = merged.get("phones") or []
    if not isinstance(phones, list) or not all(isinstance(p, str) and PHONE_RE.match(p) for p in phones):
        errors["phones"] = "a list of phone numbers (digits, +, spaces, brackets, dashes)"
    if merged.get("email") and not (isinstance(merged["email"], str) and EMAIL_RE.match(merged["email"])):
        errors["email"] = "not an e-mail address"
    _text(errors, merged, "postal_address", 500)
    _text(errors, merged, "notes", 5000)
    _text(errors, merged, "cabinet_login", 64)
    for f, pattern, message in (("inn", INN_RE, "10 or 12 digits"), ("bank_account", BANK_ACCOUNT_RE, "20 digits")):
        value = merged.get(f)
        if value and not (isinstance(value, str) and pattern.match(value.strip())):
            errors[f] = message
    if not errors.get("cabinet_login"):
        _unique(errors, Subscriber, Subscriber.cabinet_login, merged.get("cabinet_login") or None,
                "cabinet_login", exclude_id=subscriber.id if subscriber else None)
    password = merged.pop("cabinet_password", None)
    if password is not None and (not isinstance(password, str) or len(password) < 8):
        errors["cabinet_password"] = "at least 8 characters"
    if password and not merged.get("cabinet_login"):
        errors["cabinet_login"] = "required with a cabinet password"
    _raise(errors)
    before = None if creating else {f: getattr(subscriber, f) for f in SUBSCRIBER_FIELDS}
    subscriber = subscriber or Subscriber()
    for f in SUBSCRIBER_FIELDS:
        value = merged.get(f)
        setattr(subscriber, f, value.strip() if isinstance(value, str) else value)
    subscriber.cabinet_login = subscriber.cabinet_login or None
    subscriber.inn, subscriber.bank_account = subscriber.inn or None, subscriber.bank_account or None
    subscriber.phones = list(phones)
    if password:
        subscriber.set_cabinet_password(password)
    db.session.add(subscriber)
    db.session.flush()
    audit.record(actor, "subscriber.create" if creating else "subscriber.update", subscriber,
                 subscriber.full_name, before=before, after={f: getattr(subscriber, f) for f in SUBSCRIBER_FIELDS})
    if before and before["language"] != subscriber.language:
        set_language(subscriber.id, subscriber.language)
    if before and (before["full_name"], before["phones"]) != (subscriber.full_name, subscriber.phones):
        # platforms that keep the card (e.g. the intercom profile) follow the new name and phones
        from .outbox import notify

        notify([a.id for c in subscriber.contracts for a in c.accounts], "subscriber.card")
    return subscriber


def set_language(subscriber_id: int, language: str) -> None:
    """The subscriber's language (the card, the cabinet's switch), and their notification
    preferences' language with it, so messages follow what the card and the cabinet show."""
    if language not in SUBSCRIBER_LANGUAGES:
        raise BillingError({"language": f"must be one of: {', '.join(SUBSCRIBER_LANGUAGES)}"})
    db.session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(language=language))
    db.session.execute(update(NotificationPreference).where(NotificationPreference.subscriber_id == subscriber_id)
                       .values(locale=language))


def next_contract_number() -> str:
    """Year-prefixed number; random tail, so two parallel creations do not collide."""
    from . import clock

    while True:
        number = f"{clock.today():%y}-{secrets.randbelow(10**6):06d}"
        if not db.session.scalar(select(func.count()).select_from(Contract).where(Contract.number == number)):
            return number


CONTRACT_FIELDS = ("number", "credit_limit", "do_not_block")


def save_contract(data: dict, *, actor: str, contract: Contract | None = None) -> Contract:
    """Create a contract for data['subscriber_id'] or update number / credit limit / do-not-block."""
    creating = contract is None
    errors: dict = {}
    if creating:
        sid = data.get("subscriber_id")
        if not isinstance(sid, int) or db.session.get(Subscriber, sid) is None:
            errors["subscriber_id"] = "no such subscriber"
    number = data.get("number")
    if number is not None:
        if not isinstance(number, str) or not CONTRACT_NUMBER_RE.fullmatch(number):
            errors["number"] = "1-32 letters, digits, / . _ -"
        else:
            _unique(errors, Contract, Contract.number, number, "number",
                    exclude_id=contract.id if contract else None)
    credit = _money(errors, data, "credit_limit") if data.get("credit_limit") is not None else None
    if "do_not_block" in data and not isinstance(data["do_not_block"], bool):
        errors["do_not_block"] = "true or false"
    _raise(errors)
    before = None if creating else {"number": contract.number, "credit_limit": str(contract.credit_limit),
                                    "do_not_block": contract.do_not_block}
    if creating:
        contract = Contract(subscriber_id=data["subscriber_id"], number=number or next_contract_number(),
                            balance=Decimal("0"), credit_limit=credit or Decimal("0"),
                            do_not_block=bool(data.get("do_not_block", False)))
        db.session.add(contract)
    else:
        if number is not None:
            contract.number = number
        if credit is not None:
            contract.credit_limit = credit
        if "do_not_block" in data:
            contract.do_not_block = data["do_not_block"]
    db.session.flush()
    audit.record(actor, "contract.create" if creating else "contract.update", contract, contract.number,
                 before=before, after={"number": contract.number, "credit_limit": str(contract.credit_limit),
                                       "do_not_block": contract.do_not_block})
    if not creating:
        # a new credit limit or "do not block" may block or unblock right away
        from .charging import apply_balance_rule

        apply_balance_rule([contract.id], actor=actor)
    return contract


# -- reference data -------------------------------------------------------------------------

def save_agent(data: dict, *, actor: str, agent: Agent | None = None) -> Agent:
    merged = {"name": agent.name, "kind": agent.kind, "platform": agent.platform} if agent else {}
    merged.update(_stripped({k: data[k] for k in ("name", "kind", "platform") if k in data}))
    errors: dict = {}
    _text(errors, merged, "name", 100, required=True)
    if "name" not in errors:
        _unique(errors, Agent, Agent.name, merged["name"], "name", exclude_id=agent.id if agent else None)
    _choice(errors, merged, "kind", AGENT_KINDS)
    if merged.get("platform") is not None:
        from .hooks import known_platforms

        _choice(errors, merged, "platform", known_platforms())
    _raise(errors)
    creating = agent is None
    agent = agent or Agent()
    agent.name, agent.kind, agent.platform = merged["name"].strip(), merged["kind"], merged.get("platform")
    db.session.add(agent)
    db.session.flush()
    audit.record(actor, "agent.create" if creating else "agent.update", agent, agent.name, after=merged)
    return agent


SERVICE_FIELDS = ("name", "price", "charge_period", "charge_mode", "platform", "external_id", "iptv_kind")


def save_service(data: dict, *, actor: str, service: CatalogService | None = None) -> CatalogService:
    merged = {f: getattr(service, f) for f in SERVICE_FIELDS} if service else \
        {"charge_period": "month", "charge_mode": "monthly_advance"}
    merged.update(_stripped({k: data[k] for k in SERVICE_FIELDS if k in data}))
    errors: dict = {}
    _text(errors, merged, "name", 200, required=True)
    price = _money(errors, merged, "price")
    _choice(errors, merged, "charge_period", CHARGE_PERIODS)
    _choice(errors, merged, "charge_mode", CHARGE_MODES)
    _choice(errors, merged, "iptv_kind", IPTV_KINDS, required=False)
    if merged.get("platform") is not None:
        from .hooks import known_platforms

        _choice(errors, merged, "platform", known_platforms())
        if not merged.get("external_id"):
            errors["external_id"] = "required with a platform"
    _text(errors, merged, "external_id", 100)
    _raise(errors)
    creating = service is None
    service = service or CatalogService()
    for f in SERVICE_FIELDS:
        setattr(service, f, merged.get(f))
    service.price = price
    db.session.add(service)
    db.session.flush()
    audit.record(actor, "service.create" if creating else "service.update", service, service.name,
                 after={**merged, "price": str(price)})
    return service


def save_tariff(data: dict, *, actor: str, tariff: Tariff | None = None) -> Tariff:
    """Tariff with its offered services; a monthly fee is charged through a hidden service."""
    fields = ("name", "kind", "monthly_fee", "is_multi", "service_ids")
    merged = {"name": tariff.name, "kind": tariff.kind, "monthly_fee": tariff.monthly_fee,
              "is_multi": tariff.is_multi, "service_ids": [s.id for s in tariff.services]} if tariff else \
        {"kind": "services", "monthly_fee": "0", "is_multi": False, "service_ids": []}
    merged.update(_stripped({k: data[k] for k in fields if k in data}))
    errors: dict = {}
    _text(errors, merged, "name", 200, required=True)
    if "name" not in errors:
        _unique(errors, Tariff, Tariff.name, merged["name"], "name", exclude_id=tariff.id if tariff else None)
    _choice(errors, merged, "kind", TARIFF_KINDS)
    fee = _money(errors, merged, "monthly_fee")
    if not isinstance(merged.get("is_multi"), bool):
        errors["is_multi"] = "true or false"
    ids = merged.get("service_ids") or []
    services = []
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        errors["service_ids"] = "a list of service ids"
    else:
        services = [db.session.get(CatalogService, i) for i in ids]
        if any(s is None for s in services):
            errors["service_ids"] = "unknown service id"
    _raise(errors)
    creating = tariff is None
    tariff = tariff or Tariff()
    tariff.name, tariff.kind, tariff.is_multi = merged["name"].strip(), merged["kind"], merged["is_multi"]
    tariff.monthly_fee = fee
    tariff.services = services
    if fee and fee > 0:
        if tariff.fee_service is None:
            tariff.fee_service = CatalogService(price=fee)
        tariff.fee_service.price = fee
        tariff.fee_service.name = f"Абонентская плата «{tariff.name}»"[:200]
    db.session.add(tariff)
    db.session.flush()
    audit.record(actor, "tariff.create" if creating else "tariff.update", tariff, tariff.name,
                 after={"name": tariff.name, "kind": tariff.kind, "monthly_fee": str(fee),
                        "is_multi": tariff.is_multi, "service_ids": [s.id for s in services]})
    return tariff


def save_extra_field(data: dict, *, actor: str, field: ExtraFieldDefinition | None = None) -> ExtraFieldDefinition:
    merged = {"name": field.name, "title": field.title, "type": field.type, "pattern": field.pattern,
              "required": field.required} if field else {"type": "string", "required": False}
    merged.update({k: data[k] for k in ("name", "title", "type", "pattern", "required") if k in data})
    errors: dict = {}
    if not isinstance(merged.get("name"), str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", merged["name"]):
        errors["name"] = "lowercase latin letters, digits and _, starting with a letter"
    else:
        _unique(errors, ExtraFieldDefinition, ExtraFieldDefinition.name, merged["name"], "name",
                exclude_id=field.id if field else None)
    _text(errors, merged, "title", 200, required=True)
    _choice(errors, merged, "type", EXTRA_FIELD_TYPES)
    if merged.get("pattern"):
        try:
            re.compile(merged["pattern"])
        except (re.error, TypeError):
            errors["pattern"] = "not a valid regular expression"
    _raise(errors)
    creating = field is None
    field = field or ExtraFieldDefinition()
    for k in ("name", "title", "type", "pattern", "required"):
        setattr(field, k, merged.get(k))
    field.required = bool(field.required)
    db.session.add(field)
    db.session.flush()
    audit.record(actor, "extra_field.create" if creating else "extra_field.update", field, field.name, after=merged)
    return field


def get(model, ident: int, field: str = "id"):
    """Load by id or raise NotFound naming the field."""
    return get_or_404(model, ident, field)
