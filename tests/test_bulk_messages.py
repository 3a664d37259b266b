"""Bulk messages (issue 19): staff write to a filtered list; the count before sending equals
the list's, and a double submit records one notice per subscriber."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from portal.billing import ledger
from portal.extensions import db
from portal.models import BulkMessage, Notice
from portal.notifications import bulk
from tests.builders import gen_account, gen_agent, gen_contract, gen_subscriber, gen_tariff


def _people(n_debtors=3, n_paid=2):
    """Subscribers of two agents: some in debt, some paid up; one debtor with two contracts."""
    agent, other = gen_agent(name="Агент А"), gen_agent(name="Агент Б")
    tariff = gen_tariff(name="Домашний")
    made = []
    for i in range(n_debtors + n_paid):
        s = gen_subscriber(full_name=f"Абонент {i}")
        c = gen_contract(s)
        gen_account(contract=c, agent=agent if i % 2 == 0 else other, tariff=tariff)
        amount = Decimal("-150.00") if i < n_debtors else Decimal("500.00")
        ledger.post(c.id, "correction", amount, actor="t", comment="test")
        db.session.commit()
        made.append((s, c))
    return agent, other, tariff, made


def test_send_records_one_bulk_notice_per_subscriber_once(ctx):
    """Does sending twice with the same form key record one notice per subscriber?"""
    agent, other, tariff, made = _people()
    filters = bulk.parse_filters({"agent": str(agent.id)})
    expected = {s.id for i, (s, c) in enumerate(made) if i % 2 == 0}
    assert bulk.count(filters) == len(expected)
    message, created = bulk.send(filters, "Работы", "Здравствуйте, {{ subscriber_name }}!", actor="staff:x",
                                 request_key="k1")
    db.session.commit()
    assert created and message.recipients == len(expected)
    again, created = bulk.send(filters, "Работы", "Здравствуйте, {{ subscriber_name }}!", actor="staff:x",
                               request_key="k1")
    db.session.commit()
    assert not created and again.id == message.id
    rows = db.session.execute(select(Notice.subscriber_id, Notice.data).where(Notice.event == "bulk")).all()
    assert sorted(r.subscriber_id for r in rows) == sorted(expected)
    assert rows[0].data["text"] == "Здравствуйте, {{ subscriber_name }}!"
    assert db.session.scalar(select(func.count()).select_from(BulkMessage)) == 1
