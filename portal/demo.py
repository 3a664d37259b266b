"""Demo data for `make run`: staff of each role, reference data, subscribers with money and
accounts in every state, built through the billing layer like any other change."""
from __future__ import annotations

from decimal import Decimal

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from .billing import accounts as acc
from .billing import directory, ledger
from .billing.charging import charge
from .extensions import db
from .models import StaffUser

demo = AppGroup("demo", help="Demo data.")
ACTOR = "demo"

STAFF = [("admin", "admin", "Администратор"), ("manager", "manager", "Менеджер"), ("viewer", "viewer", "Наблюдатель")]
# (full name, phones, email, cabinet login, payment, accounts: (login, tariff key, services, state))
# Payers the sample bank statement finds (portal/demo_data/statement_1c.txt): by INN, by account
BANK_PAYERS = {"ООО «Ромашка»": {"inn": "7709876543"},
               "Кузнецов Иван Сергеевич": {"bank_account": "40817810000000004433"}}
SUBSCRIBERS = [
    ("Петров Пётр Петрович", ["+7 912 345-67-89"], "petrov@example.ru", "demo", "1500.00",
     [("petrov", "home100", ["tv_basic"], "active"), ("petrov-tv", "tv", ["tv_basic", "tv_movies"], "active")]),
    ("Сидорова Анна Викторовна", ["+7 903 111-22-33"], "anna@example.ru", None, "100.00",
     [("sidorova", "home100", [], "active")]),
    ("ООО «Ромашка»", ["+7 495 000-00-01"], "office@romashka.example", None, "5000.00",
     [("romashka", "office", [], "active")]),
    ("Кузнецов Иван Сергеевич", ["+7 926 555-44-33"], None, None, "700.00",
     [("kuznetsov", "home100", [], "manager_block")]),
    ("Смирнова Ольга Ивановна", [], None, None, "0",
     [("smirnova", "home100", [], "inactive")]),
]


@demo.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when staff users exist already.")
def demo_load(if_empty: bool) -> None:
    """Load the demo data set (staff admin/admin12345, cabinet demo/demo12345)."""
    if if_empty and db.session.scalar(select(func.count()).select_from(StaffUser)):
        click.echo("demo data: the database is not empty, base data not loaded")
    else:
        load()
        db.session.commit()
        click.echo("demo data loaded")
    load_platforms()
    load_payment_agent()
    db.session.commit()


# The demo payment agent: a terminal network on this machine that pays by account login
# (`python -m portal.payments.terminal sidorova 600` plays it; README, "Payment agents").
DEMO_AGENT = {"name": "Демо-терминалы", "slug": "demo-terminal", "account_field": "login",
              "networks": "127.0.0.1/32 ::1/128", "secret": "terminal12345", "min_sum": "10.00",
              "max_sum": "15000.00", "fee_percent": "1.5", "fee_fixed": "0", "enabled": True}


def load_payment_agent() -> None:
    """The demo payment agent, unless one with its name in the URL exists already."""
    from .billing.agent_payments import save_agent
    from .models import PaymentAgent

    if db.session.scalar(select(func.count()).select_from(PaymentAgent)
                         .where(PaymentAgent.slug == DEMO_AGENT["slug"])) == 0:
        save_agent(DEMO_AGENT, actor=ACTOR)


def load_payment_sources() -> None:
    """A few payments of every source, two cashiers' and a cancelled one, so that the payments
    list's filters (source, cashier) and a storno show something."""
    from .models import Contract

    # contracts in credit only: the balance-blocked debtor (sidorova) stays blocked for the tour
    contracts = db.session.scalars(select(Contract).where(Contract.balance >= 0).order_by(Contract.id).limit(3)).all()
    staff = {u.login: u for u in db.session.scalars(select(StaffUser))}
    rows = [("cash", "admin", "350.00", "form:demo-cash-1", "Касса, офис на Московской"),
            ("cash", "manager", "500.00", "form:demo-cash-2", "Касса, офис на Московской"),
            ("api", None, "1200.00", "payment:demo-erp-1", "1С: платёжное поручение"),
            ("agent", None, "300.00", "agent:demo:demo-1", "Демо-терминалы, txn demo-1"),
            ("statement", "admin", "2000.00", "bank:demo:1", "п/п 1 по выписке"),
            ("online", None, "450.00", "yookassa:demo-1", "ЮKassa demo-1")]
    actors = {"api": "api:1С", "agent": "agent:demo-terminal", "online": "platform:yookassa"}
    first = None
    for n, (source, cashier, amount, key, comment) in enumerate(rows):
        entry, _ = ledger.post(contracts[n % len(contracts)].id, "payment", Decimal(amount),
                               actor=actors.get(source) or f"staff:{cashier}", comment=comment, idempotency_key=key,
                               source=source, cashier_id=staff[cashier].id if source == "cash" else None)
        first = first or entry
    ledger.storno(first.id, "Ошибка кассира: не тот договор", actor="staff:admin")


def load_platforms() -> None:
    """Each platform's demo data (its hook does nothing when its data is there already)."""
    from .platforms.registry import all_platforms

    for platform in all_platforms():
        if platform.demo_load is not None:
            platform.demo_load()


def load() -> None:
    for login, role, name in STAFF:
        user = StaffUser(login=login, role=role, full_name=name)
        user.set_password(f"{login}12345")
        db.session.add(user)
    internet = directory.save_agent({"name": "RADIUS (интернет)", "kind": "radius"}, actor=ACTOR)
    services_agent = directory.save_agent({"name": "Услуги", "kind": "services"}, actor=ACTOR)
    directory.save_extra_field({"name": "isvyaz_login", "title": "Логин «Интерсвязь»",
                                "pattern": r"[A-Za-z0-9_.-]{3,64}"}, actor=ACTOR)
    svc = {
        "tv_basic": directory.save_service({"name": "ТВ «Базовый»", "price": "199.00"}, actor=ACTOR),
        "tv_movies": directory.save_service({"name": "ТВ «Кино»", "price": "149.00",
                                             "charge_mode": "daily_prorata"}, actor=ACTOR),
        "ip": directory.save_service({"name": "Статический IP", "price": "10.00", "charge_period": "day",
                                      "charge_mode": "daily_prorata"}, actor=ACTOR),
    }
    tariffs = {
        "home100": directory.save_tariff({"name": "Домашний 100", "kind": "internet", "monthly_fee": "650.00",
                                          "service_ids": [svc["tv_basic"].id, svc["tv_movies"].id]}, actor=ACTOR),
        "office": directory.save_tariff({"name": "Офис 500", "kind": "internet", "monthly_fee": "3900.00",
                                         "service_ids": [svc["ip"].id]}, actor=ACTOR),
        "tv": directory.save_tariff({"name": "Телевидение", "kind": "services",
                                     "service_ids": [svc["tv_basic"].id, svc["tv_movies"].id]}, actor=ACTOR),
    }
    for n, (name, phones, email, cabinet, paid, accounts) in enumerate(SUBSCRIBERS, start=1):
        data = {"full_name": name, "phones": phones, "email": email,
                "kind": "company" if name.startswith("ООО") else "person",
                "postal_address": f"г. Пенза, ул. Московская, д. {n}, кв. {10 + n}"}
        if cabinet:
            data.update(cabinet_login=cabinet, cabinet_password=f"{cabinet}12345")
        data.update(BANK_PAYERS.get(name, {}))
        subscriber = directory.save_subscriber(data, actor=ACTOR)
        contract = directory.save_contract({"subscriber_id": subscriber.id}, actor=ACTOR)
        if Decimal(paid):
            ledger.payment(contract.id, paid, actor=ACTOR, external_id=f"demo-{n}", comment="Демо-платёж")
        for login, tariff, services, state in accounts:
            tariff = tariffs[tariff]
            agent = services_agent if tariff.kind == "services" else internet
            account = acc.create_account({"contract_id": contract.id, "login": login, "password": f"{login}-pw",
                                          "agent_id": agent.id, "tariff_id": tariff.id,
                                          "house": "ул. Московская, 1", "flat": str(n)}, actor=ACTOR)
            if state == "inactive":
                continue
            acc.activate(account, actor=ACTOR)
            for key in services:
                acc.assign_service(account, {"service_id": svc[key].id}, actor=ACTOR)
            if state == "manager_block":
                acc.block(account, "manager", actor=ACTOR)
    charge(actor=ACTOR)
    load_payment_sources()
    # promised payments: what lifts a balance block, up to 1 500 ₽, for 3 days, once a month, no fee
    from .billing.promised import save_rule

    save_rule({"enabled": True, "amount_mode": "unblock", "max_amount": "1500", "days": "3", "per_month": "1",
               "fee": "0", "tariff_ids": []}, actor=ACTOR)
