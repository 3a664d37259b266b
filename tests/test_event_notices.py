"""Event notices where the events happen (issue 19): a payment, a promised payment due back, a
service assigned, bought or ended — each recorded once, however often the payment, callback or
pass is replayed."""
from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import charging, clock, ledger, notice_events, promised
from portal.extensions import db
from portal.models import Contract, Notice
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_subscriber, gen_tariff, gen_token


def notices(event: str, contract_id: int | None = None) -> list[Notice]:
    db.session.expire_all()
    q = select(Notice).where(Notice.event == event).order_by(Notice.id)
    if contract_id is not None:
        q = q.where(Notice.contract_id == contract_id)
    return list(db.session.scalars(q))


def test_a_staff_payment_tells_the_subscriber_once(ctx):
    """When a cashier posts my payment (and posts it again by mistake), am I told once, with the
    amount and my new balance — a courtesy, not a service-critical message (who asked for those only
    is not written to about every payment)?"""
    c = gen_contract()
    for _ in range(2):
        ledger.payment(c.id, Decimal("250.50"), actor="staff:kassa", external_id="desk-1", source="cash")
        db.session.commit()
    [n] = notices("payment_received", c.id)
    assert not n.critical and n.subscriber_id == c.subscriber_id
    assert (n.data["amount"], n.data["balance"], n.data["source"]) == ("250.50", "250.50", "cash")
    assert n.data["paid_at"]


def test_the_new_balance_is_after_the_payment(ctx):
    """Is the balance in the message the one after this payment, not before it?"""
    c = gen_contract()
    ledger.payment(c.id, Decimal("100.00"), actor="t", external_id="a")
    ledger.payment(c.id, Decimal("0.05"), actor="t", external_id="b")
    db.session.commit()
    assert [(n.data["amount"], n.data["balance"]) for n in notices("payment_received", c.id)] == [
        ("100.00", "100.00"), ("0.05", "100.05")]


def test_corrections_and_charges_are_not_payments(ctx):
    """A staff correction or a charge is no "payment received"."""
    c = gen_contract()
    ledger.post(c.id, "correction", Decimal("10.00"), actor="t", comment="goodwill")
    ledger.post(c.id, "charge", Decimal("-1.00"), actor="t", comment="fee")
    db.session.commit()
    assert notices("payment_received") == []


def test_api_payment_fired_in_parallel_tells_once(app, ctx):
    """If my system fires the same payment four times at once over the API, is the subscriber
    told once?"""
    token = gen_token("manager")
    contract = gen_contract()
    body = {"contract_id": contract.id, "amount": "75.00", "external_id": "burst-notice"}
    db.session.rollback()
    start = threading.Barrier(4)
    codes = []

    def send():
        client = app.test_client()
        start.wait()
        codes.append(client.post("/api/v1/payments", headers={"Authorization": f"Bearer {token}"},
                                 json=body).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 200, 200, 201]
    [n] = notices("payment_received", contract.id)
    assert (n.data["amount"], n.data["balance"], n.data["source"]) == ("75.00", "75.00", "api")


def test_a_bank_statement_posted_twice_tells_each_payer_once(ctx):
    """A statement's payments, posted and then posted again, tell each payer once."""
    owner = gen_subscriber()
    contracts = [gen_contract(owner) for _ in range(3)]
    rows = [dict(contract_id=c.id, amount=Decimal(f"{100 + i}.00"), idempotency_key=f"bank:st:{i}")
            for i, c in enumerate(contracts)]
    for _ in range(2):
        ledger.post_payments(rows, actor="staff:t", chunk=2)
        db.session.commit()
    got = notices("payment_received")
    assert sorted((n.contract_id, n.data["amount"], n.data["source"]) for n in got) == [
        (c.id, f"{100 + i}.00", "statement") for i, c in enumerate(contracts)]


def test_service_assigned_by_staff_and_bought_by_the_subscriber(ctx):
    """Staff assigning a service says "assigned"; the subscriber's own purchase (a request with
    its one-time key, as the cabinet and an upsale send) says "bought", once however often the
    request is repeated."""
    tv = gen_service("199.00", platform=None)
    net = gen_service("500.00")
    c = gen_contract()
    ledger.payment(c.id, Decimal("1000"), actor="t", external_id="seed")
    db.session.commit()
    a = gen_account(contract=c, tariff=gen_tariff([tv, net]), services=[net])
    for _ in range(2):
        acc.assign_service(a, {"service_id": tv.id}, actor="subscriber:1", order_key="cabinet-nonce-1")
        db.session.commit()
    [assigned] = notices("service_assigned", c.id)
    assert assigned.data["service_name"] == net.name and assigned.data["account_login"] == a.login
    assert assigned.data["price"] == "500.00" and assigned.account_id == a.id
    [bought] = notices("service_bought", c.id)
    assert (bought.data["service_name"], bought.data["price"], bought.data["period"]) == (tv.name, "199.00", "month")


def test_an_upsale_is_a_purchase(ctx):
    """A service bought through a platform's upsale (its charge keyed by the transaction) is
    "bought", not "assigned"."""
    tv = gen_service("99.00")
    c = gen_contract()
    ledger.payment(c.id, Decimal("500"), actor="t", external_id="seed-u")
    db.session.commit()
    a = gen_account(contract=c, tariff=gen_tariff([tv]))
    acc.assign_service(a, {"service_id": tv.id}, actor="platform:smotreshka", charge_key=("upsale:1", "upsale q-1"))
    db.session.commit()
    assert [n.data["service_name"] for n in notices("service_bought", c.id)] == [tv.name]
    assert notices("service_assigned", c.id) == []


def test_service_ended_by_staff_and_by_its_end_date(ctx):
    """Ending a service, by staff or because its end date passed (the charge run), tells the
    subscriber once each, with the last day."""
    s1, s2 = gen_service("100.00"), gen_service("100.00")
    with clock.as_of(date(2025, 3, 10)):
        a = gen_account(tariff=gen_tariff([s1, s2]), services=[s1])
        held = a.services[0]
        acc.assign_service(a, {"service_id": s2.id, "ends_on": date(2025, 3, 20)}, actor="t")
        db.session.commit()
        acc.end_service(held, actor="staff:t")
        db.session.commit()
    for _ in range(2):
        charging.charge(date(2025, 3, 21), actor="t")
        db.session.commit()
    ended = notices("service_ended", a.contract_id)
    assert [(n.data["service_name"], n.data["ended_on"]) for n in ended] == [(s1.name, "2025-03-09"),
                                                                           (s2.name, "2025-03-20")]


def test_promised_payment_reminder_the_day_before_it_goes_back(ctx):
    """On its last day, a promised payment's holder hears it is taken back tomorrow; once, and
    not on other days."""
    promised.save_rule({"enabled": True, "amount_mode": "unblock", "max_amount": "1000", "days": "3",
                        "per_month": "1", "fee": "0", "tariff_ids": []}, actor="t")
    db.session.commit()
    s = gen_subscriber()
    c = gen_contract(s)
    taken_on = date(2025, 3, 10)
    with clock.as_of(taken_on):
        gen_account(contract=c, tariff=gen_tariff([], monthly_fee="300.00"), agent=gen_agent())
        p, _ = promised.take(db.session.get(Contract, c.id), actor="t")
        db.session.commit()
    last = p.until
    assert notice_events.promised_expiring(last - timedelta(days=1)) == 0
    assert notice_events.promised_expiring(last) == 1
    assert notice_events.promised_expiring(last) == 0
    db.session.commit()
    [n] = notices("promised_expiring", c.id)
    assert n.data["amount"] == str(p.amount)
    assert (n.data["until"], n.data["last_day"]) == ((last + timedelta(days=1)).isoformat(), last.isoformat())
