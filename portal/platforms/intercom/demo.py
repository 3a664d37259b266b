"""Demo data for ``make run`` (``flask demo load`` calls ``load`` through the platform hook):
an intercom agent, the periodic «Домофон» service and the «Домофон» tariff, and one flat of
Сидорова linked to her profile ``sidorova.anna``, which the emulator has before we link it
(emulator.DEMO_PROFILES). Does nothing when the intercom agent exists already."""
from __future__ import annotations

from sqlalchemy import select

from ...billing import accounts as acc
from ...billing import directory
from ...extensions import db
from ...models import Agent, ExtraFieldDefinition, Subscriber

ACTOR = "demo"


def load() -> None:
    if db.session.scalar(select(Agent.id).where(Agent.platform == "intercom").limit(1)) is not None:
        return
    if db.session.scalar(select(ExtraFieldDefinition.id).filter_by(name="isvyaz_login")) is None:
        directory.save_extra_field({"name": "isvyaz_login", "title": "Логин «Интерсвязь»",
                                    "pattern": r"[A-Za-z0-9_.-]{3,64}"}, actor=ACTOR)
    agent = directory.save_agent({"name": "«Интерсвязь» (домофон)", "kind": "intercom", "platform": "intercom"},
                                 actor=ACTOR)
    service = directory.save_service({"name": "Домофон", "price": "60.00", "platform": "intercom",
                                      "external_id": "intercom"}, actor=ACTOR)
    tariff = directory.save_tariff({"name": "Домофон", "kind": "services", "service_ids": [service.id]}, actor=ACTOR)
    anna = db.session.scalar(select(Subscriber).filter_by(full_name="Сидорова Анна Викторовна"))
    if anna is None or not anna.contracts:
        return
    account = acc.create_account({"contract_id": anna.contracts[0].id, "login": "sidorova-dom", "agent_id": agent.id,
                                  "tariff_id": tariff.id, "house": "ул. Московская, 1", "flat": "2",
                                  "extra": {"isvyaz_login": "sidorova.anna"}}, actor=ACTOR)
    acc.activate(account, actor=ACTOR)
    acc.assign_service(account, {"service_id": service.id}, actor=ACTOR)
