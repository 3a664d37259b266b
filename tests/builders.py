"""Test data builders (gen_*), in the CTFd style: each makes a valid object and commits."""
from __future__ import annotations

import itertools
from decimal import Decimal

from portal.billing import accounts as acc
from portal.billing import directory, ledger
from portal.extensions import db
from portal.models import ApiToken, StaffUser

_seq = itertools.count(1)
ACTOR = "test"


def gen_staff(login=None, role="admin", password="password123"):
    user = StaffUser(login=login or f"staff{next(_seq)}", role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def gen_token(role="admin", name=None) -> str:
    token, plain = ApiToken.issue(name or f"token{next(_seq)}", role)
    db.session.add(token)
    db.session.commit()
    return plain


def gen_subscriber(**kw):
    data = {"full_name": f"Иванов Иван {next(_seq)}", "phones": ["+7 900 000-00-00"]}
    data.update(kw)
    s = directory.save_subscriber(data, actor=ACTOR)
    db.session.commit()
    return s


def gen_contract(subscriber=None, **kw):
    subscriber = subscriber or gen_subscriber()
    c = directory.save_contract({"subscriber_id": subscriber.id, **kw}, actor=ACTOR)
    db.session.commit()
    return c


def gen_agent(kind="services", platform=None, name=None):
    a = directory.save_agent({"name": name or f"agent{next(_seq)}", "kind": kind, "platform": platform},
                             actor=ACTOR)
    db.session.commit()
    return a


def gen_service(price="300.00", **kw):
    data = {"name": f"service{next(_seq)}", "price": price}
    data.update(kw)
    s = directory.save_service(data, actor=ACTOR)
    db.session.commit()
    return s


def gen_tariff(services=(), monthly_fee="0", **kw):
    data = {"name": f"tariff{next(_seq)}", "monthly_fee": monthly_fee, "service_ids": [s.id for s in services]}
    data.update(kw)
    t = directory.save_tariff(data, actor=ACTOR)
    db.session.commit()
    return t


def gen_account(contract=None, tariff=None, agent=None, activate=True, services=(), **kw):
    """An account on a tariff offering ``services``, activated, with those services assigned."""
    contract = contract or gen_contract()
    agent = agent or gen_agent()
    tariff = tariff or gen_tariff(services)
    data = {"contract_id": contract.id, "login": f"user{next(_seq)}", "password": "secret1",
            "agent_id": agent.id, "tariff_id": tariff.id}
    data.update(kw)
    a = acc.create_account(data, actor=ACTOR)
    db.session.commit()
    if activate:
        acc.activate(a, actor=ACTOR)
        db.session.commit()
    for s in services:
        acc.assign_service(a, {"service_id": s.id}, actor=ACTOR)
        db.session.commit()
    return a


def subscriber_with_account(login="anna", services=(), monthly_fee="0", paid="1000.00"):
    """A subscriber with a cabinet login (password ``helpers.CABINET_PASSWORD``), a contract
    with money on it and one active account."""
    from tests.helpers import CABINET_PASSWORD

    s = gen_subscriber(full_name=f"Абонент {login}", cabinet_login=login, cabinet_password=CABINET_PASSWORD)
    c = gen_contract(s)
    if paid:
        ledger.payment(c.id, Decimal(paid), actor="t", external_id=f"pay-{login}")
        db.session.commit()
    tariff = gen_tariff(services, monthly_fee=monthly_fee, name=f"Домашний {login}")
    a = gen_account(contract=c, tariff=tariff, services=services, house="ул. Ленина, 1", flat="5")
    return s, c, a
