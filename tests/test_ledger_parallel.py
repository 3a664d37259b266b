"""Many payments posted at once (a bank statement) by two staff members in parallel, each
listing the same payments in another order: no deadlock, every payment credited once."""
from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy import func, select

from portal.billing import ledger
from portal.extensions import db
from portal.models import Contract, LedgerEntry
from tests.builders import gen_contract, gen_subscriber


def test_two_posters_in_opposite_orders_credit_each_payment_once(app, ctx):
    owner = gen_subscriber()
    contracts = [gen_contract(owner) for _ in range(60)]
    rows = [dict(contract_id=c.id, amount=Decimal(100 + i), idempotency_key=f"bank:test:{i}", comment=f"doc {i}")
            for i, c in enumerate(contracts)]
    orders = [rows, list(reversed(rows))]
    errors: list[BaseException] = []
    gate = threading.Barrier(2)

    def poster(mine):
        with app.app_context():
            try:
                gate.wait()
                ledger.post_payments(mine, actor="staff:test", chunk=7)
                db.session.commit()
            except BaseException as e:  # noqa: BLE001  (the test reports it)
                errors.append(e)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=poster, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    db.session.rollback()
    for i, c in enumerate(contracts):
        assert db.session.get(Contract, c.id).balance == Decimal(100 + i)
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == len(rows)
