"""Demo data: the emulator's subscriptions in the catalog and the three ways of selling TV.

1. «Смотрёшка ТВ», a tariff of kind ``services`` with every TV service, on the agent
   «ТВ «Смотрёшка»» (kind ``services``): Волкова (cabinet ``tvdemo`` / ``tvdemo12345``).
2. Internet tariffs «Интернет 100 + ТВ» and «Интернет 300 + ТВ» (agent RADIUS) that offer TV:
   Орлов; switching between them keeps his TV.
3. The multi-tariff «ТВ-пакеты» on an internet account («Интернет 50»): Соколов.

Does nothing when a «Смотрёшка» service exists already.
"""
from __future__ import annotations

from sqlalchemy import select

from ...billing import accounts as acc
from ...billing import directory, ledger
from ...extensions import db
from ...models import Agent, CatalogService, Tariff
from .sync import NAME

ACTOR = "demo"
SERVICES = [  # external id, name, kind, price
    ("101", "Смотрёшка «Лайт»", "basic", "199.00"),
    ("102", "Смотрёшка «Оптимальный»", "basic", "349.00"),
    ("201", "Кинопакет «Амедиатека»", "additional", "299.00"),
    ("202", "Детский", "additional", "99.00"),
    ("203", "Спорт", "additional", "149.00"),
]


def _agent(name: str, kind: str, platform: str | None) -> Agent:
    agent = db.session.scalar(select(Agent).filter_by(name=name))
    return agent or directory.save_agent({"name": name, "kind": kind, "platform": platform}, actor=ACTOR)


def _tariff(name: str, **data) -> Tariff:
    tariff = db.session.scalar(select(Tariff).filter_by(name=name))
    return tariff or directory.save_tariff({"name": name, **data}, actor=ACTOR)


def _subscriber(full_name, email, cabinet, paid, n):
    data = {"full_name": full_name, "phones": [f"+7 927 000-00-{n:02d}"], "email": email,
            "postal_address": f"г. Пенза, ул. Гагарина, д. {n}"}
    if cabinet:
        data.update(cabinet_login=cabinet, cabinet_password=f"{cabinet}12345")
    subscriber = directory.save_subscriber(data, actor=ACTOR)
    contract = directory.save_contract({"subscriber_id": subscriber.id}, actor=ACTOR)
    ledger.payment(contract.id, paid, actor=ACTOR, external_id=f"demo-smotreshka-{n}", comment="Демо-платёж")
    return contract


def load() -> None:
    if db.session.scalar(select(CatalogService.id).filter_by(platform=NAME).limit(1)) is not None:
        return
    svc = {ext: directory.save_service({"name": name, "price": price, "platform": NAME, "external_id": ext,
                                        "iptv_kind": kind}, actor=ACTOR)
           for ext, name, kind, price in SERVICES}
    tv_ids = [s.id for s in svc.values()]
    tv_agent = _agent("ТВ «Смотрёшка»", "services", NAME)
    radius = _agent("RADIUS «Смотрёшка»-демо", "radius", None)
    tv_tariff = _tariff("Смотрёшка ТВ", kind="services", monthly_fee="0", service_ids=tv_ids)
    inet100 = _tariff("Интернет 100 + ТВ", kind="internet", monthly_fee="500.00", service_ids=tv_ids)
    _tariff("Интернет 300 + ТВ", kind="internet", monthly_fee="800.00", service_ids=tv_ids)
    inet50 = _tariff("Интернет 50", kind="internet", monthly_fee="400.00", service_ids=[])
    packs = _tariff("ТВ-пакеты", kind="services", monthly_fee="0", is_multi=True, service_ids=tv_ids)

    plans = [  # subscriber, email, cabinet, money, login, agent, tariff, multi, services
        ("Волкова Мария Андреевна", "volkova@example.ru", "tvdemo", "1000.00", "volkova-tv", tv_agent, tv_tariff, [],
         ["101", "202"]),
        ("Орлов Денис Игоревич", None, None, "2000.00", "orlov", radius, inet100, [], ["102", "201"]),
        ("Соколов Артём Павлович", "sokolov@example.ru", None, "1500.00", "sokolov", radius, inet50, [packs],
         ["101", "203"]),
    ]
    for n, (name, email, cabinet, paid, login, agent, tariff, multis, services) in enumerate(plans, start=1):
        contract = _subscriber(name, email, cabinet, paid, n)
        account = acc.create_account({"contract_id": contract.id, "login": login, "password": f"{login}-pw",
                                      "agent_id": agent.id, "tariff_id": tariff.id,
                                      "multi_tariff_ids": [t.id for t in multis]}, actor=ACTOR)
        acc.activate(account, actor=ACTOR)
        for ext in services:
            acc.assign_service(account, {"service_id": svc[ext].id}, actor=ACTOR)
