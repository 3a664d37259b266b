#!/usr/bin/env python
"""Benchmark of the payment agents' provider protocol, ``command=pay``, open loop (bench/README.md).

    .venv/bin/python bench/provider.py [--rate 200] [--seconds 10] [--database-url URL] [--redis-url URL]
                                       [--server gunicorn|werkzeug] [--workers N] [--threads N]

On the open-loop machinery it shares with bench/upsale.py (bench/openloop.py: the database,
the portal under gunicorn, the schedule, the report and the CPU meter). Prepares a fresh
database (SQLite in a temporary instance directory, or the PostgreSQL database named by
--database-url, whose name must contain "bench") with a payment
agent (networks 127.0.0.1/32, a shared secret sent as HTTP Basic, paying by contract number) and
one contract per two pays, each with an active account on a 500.00 monthly tariff and no money,
so blocked by balance: the first pay of a contract (600.00) lifts the block, which charges the
month's remaining days, queues the platforms' outbox rows and audits the unblock, and the second
(100.00) is a plain payment. Starts the portal the way production serves it (gunicorn with the
repository's gunicorn.conf.py; ``--server werkzeug`` for `make run`'s server) and offers one
``pay`` every 1/rate s, each with its own txn_id, on a fresh connection.

Open loop, no coordinated omission: pay k is due at start + k / rate whether or not earlier pays
have answered, and is timed from its due time, so a call that waited for a free generator thread
counts that wait.

Prints the offered and the served rate (answers per second from the first due time to the last
answer, or the schedule's length if longer), how late the generator was, p50/p95/p99/max of the
unblocking pays, the plain ones and all, the
wrong answers (a non-200 status, a result other than 0, a transport error), the CPU each call
cost the portal, PostgreSQL, Redis and this load generator (from /proc), the rest of the machine
meanwhile, and the end state: one agent payment and one ledger payment per pay, every balance
equal to its ledger sum, no account of the bench left blocked.

With --reference the same schedule then runs through API v1 (POST /api/v1/payments: the same
ledger path without the protocol) on its own contracts, measured the same way, so that the
provider's own cost can be told from the machine's state and the ledger's.

Target (exit code 0 only when all are met): p99 <= --p99-ms (50), served >= 99.5 % of the offered
rate, every answer right, the end state right.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openloop import (  # noqa: E402  (the machinery every open-loop bench shares)
    CpuMeter,
    Portal,
    _reset_schema,
    embedded_redis,
    environment,
    pool_options,
    redis_pid,
    report,
    report_cpu,
    run,
    settle,
    speed_reference,
)

SLUG, SECRET = "bench-agent", "bench-Agent-secret-1"
FIRST, SECOND = "600.00", "100.00"  # the first lifts the 500.00 block, the second is a plain payment
RESULT_RE = re.compile(rb"<result>(\d+)</result>")


def prepare(contracts: int) -> tuple[list[tuple[int, str]], str]:
    """The agent and ``contracts`` balance-blocked contracts; returns their (id, number) pairs
    and an API v1 token (for --reference)."""
    from portal import create_app
    from portal.billing import accounts as acc
    from portal.billing import agent_payments, directory
    from portal.extensions import db
    from portal.models import ApiToken

    app = create_app()
    with app.app_context():
        _reset_schema(db)
        token, plain = ApiToken.issue("bench", "manager")
        db.session.add(token)
        agent_payments.save_agent({"name": "Банк (бенчмарк)", "slug": SLUG, "account_field": "contract",
                                   "networks": "127.0.0.1/32", "secret": SECRET, "min_sum": "1",
                                   "max_sum": "15000", "fee_percent": "1.2", "fee_fixed": "0", "enabled": True},
                                  actor="bench")
        tariff = directory.save_tariff({"name": "Интернет", "kind": "internet", "monthly_fee": "500.00"},
                                       actor="bench")
        agent = directory.save_agent({"name": "RADIUS", "kind": "radius"}, actor="bench")
        numbers = []
        for i in range(contracts):
            s = directory.save_subscriber({"full_name": f"Абонент {i}"}, actor="bench")
            c = directory.save_contract({"subscriber_id": s.id, "number": f"B-{i:06d}"}, actor="bench")
            a = acc.create_account({"contract_id": c.id, "login": f"b{i}", "agent_id": agent.id,
                                    "tariff_id": tariff.id}, actor="bench")
            acc.activate(a, actor="bench")  # charges the month: blocked by balance
            numbers.append((c.id, c.number))
            if i % 200 == 199:
                db.session.commit()
        db.session.commit()
        settle(db)
    return numbers, plain


def end_state(pays: int) -> tuple[bool, str]:
    """One ledger payment per agent payment, none more than the calls sent; balances = ledger
    sums; how many accounts are still blocked."""
    from sqlalchemy import BigInteger, func, select, type_coerce

    from portal import create_app
    from portal.extensions import db
    from portal.models import Account, AgentPayment, Contract, LedgerEntry

    app = create_app()
    with app.app_context():
        e, c = LedgerEntry.__table__.c, Contract.__table__.c
        payments = db.session.scalar(select(func.count()).select_from(AgentPayment))
        keyed = db.session.scalar(select(func.count()).where(e.idempotency_key.like("agent:%")))
        api = db.session.scalar(select(func.count()).where(e.idempotency_key.like("payment:r%")))
        sums = select(e.contract_id, func.sum(type_coerce(e.amount, BigInteger)).label("s")) \
            .group_by(e.contract_id).subquery()
        joined = Contract.__table__.join(sums, sums.c.contract_id == c.id)
        off = db.session.scalar(select(func.count()).select_from(joined)
                                .where(type_coerce(c.balance, BigInteger) != sums.c.s))
        blocked = db.session.scalar(select(func.count()).select_from(Account).where(Account.status == "blocked"))
        ok = payments == keyed and keyed + api <= pays and off == 0
        return ok, (f"{payments} agent payments, {keyed} + {api} (API) ledger payments for {pays} calls sent "
                    f"(a call whose client timed out may still have been paid); {off} balances off their "
                    f"ledger; {blocked} accounts still blocked (those whose pay failed, if any)")


class Generator:
    """One pay (or, for the reference, one API v1 payment) on a fresh connection (as
    gunicorn.conf.py closes each: keepalive 0), run by openloop.run on the schedule."""

    def __init__(self, port: int, timeout: float, token: str = ""):
        self.port, self.timeout, self.token = port, timeout, token
        self.auth = "Basic " + base64.b64encode(f"{SLUG}:{SECRET}".encode()).decode()

    def call(self, item: tuple[str, dict], due: float, rec: dict) -> None:
        kind, query = item
        try:
            status, result = self.send(query)
        except OSError as e:
            rec["wrong"] = ("error", repr(e))
            return
        t = time.monotonic()
        rec["ms"][kind] = (t - due) * 1000
        rec["answered"].append(t)
        if status not in (200, 201) or result != 0:
            rec["wrong"] = (status, result)

    def send(self, query: dict) -> tuple[int, int | None]:
        if "api" in query:
            return self.send_api(query["api"])
        head = (f"GET /pay/provider/{SLUG}?{urlencode(query)} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: {self.auth}\r\nConnection: close\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as sock:
            sock.sendall(head)
            raw = b""
            while chunk := sock.recv(65536):  # to the server's close
                raw += chunk
                if b"</response>" in raw:
                    break
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
        m = RESULT_RE.search(raw)
        return status, int(m.group(1)) if m else None

    def send_api(self, body: dict) -> tuple[int, int | None]:
        """The reference: the same payment through API v1 (POST /api/v1/payments); 0 for a 201."""
        data = json.dumps(body).encode()
        head = (f"POST /api/v1/payments HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as sock:
            sock.sendall(head + data)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
        return status, 0 if status == 201 else None


def schedule(contracts: list[tuple[int, str]], tag: str, api: bool = False) -> list[tuple[str, dict]]:
    """Two pays per contract, the second after every contract had its first: (kind, call) with
    kind "unblocking" (the first) or "plain" (``api``: the same payments as API v1 bodies, the
    reference)."""
    when = time.strftime("%Y%m%d%H%M%S")
    kinds = {1: "unblocking", 2: "plain"}
    if api:
        return [(kinds[n], {"api": {"contract_id": ident, "amount": FIRST if n == 1 else SECOND,
                                    "external_id": f"{tag}{n}{i}"}})
                for n in (1, 2) for i, (ident, _number) in enumerate(contracts)]
    return [(kinds[n], {"command": "pay", "txn_id": f"{tag}{n}{i}", "txn_date": when, "account": number,
                        "sum": FIRST if n == 1 else SECOND})
            for n in (1, 2) for i, (_ident, number) in enumerate(contracts)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="pays offered per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured schedule")
    parser.add_argument("--port", type=int, default=5078)
    parser.add_argument("--database-url", default=None, help="PostgreSQL; its name must contain 'bench'")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads; default: gunicorn.conf.py's")
    parser.add_argument("--client-threads", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at a quarter of the rate, not counted")
    parser.add_argument("--p99-ms", type=float, default=50.0)
    parser.add_argument("--reference", action="store_true",
                        help="then the same payments through API v1 (POST /api/v1/payments), measured alike")
    args = parser.parse_args()

    interval = 1 / args.rate
    pays = int(round(args.seconds * args.rate)) // 2 * 2
    warm = int(round(args.warmup * args.rate / 4)) // 2 * 2
    instance, database = environment("bench-provider-", args.database_url, args.redis_url)

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs); "
          f"speed reference {speed_reference():.1f} ms (a fixed loop's CPU: higher = slower)", flush=True)
    started = time.monotonic()
    half = (pays + warm) // 2
    contracts, token = prepare(half * (2 if args.reference else 1))
    print(f"prepared {len(contracts)} balance-blocked contracts in {time.monotonic() - started:.1f}s "
          f"({'PostgreSQL ' + database if database else 'SQLite in ' + instance})", flush=True)
    embedded_redis()
    print(f"pool: {pool_options(None)}", flush=True)
    runs = [("provider pay", schedule(contracts[:pays // 2], "m"), schedule(contracts[pays // 2:half], "w"))]
    if args.reference:  # the same payments through API v1, on their own contracts, after the provider's
        ref = contracts[half:]
        runs.append(("reference: API v1 payment", schedule(ref[:pays // 2], "rm", api=True),
                     schedule(ref[pays // 2:], "rw", api=True)))

    portal = Portal(args.port, args.server, "wsgi", None, args.workers, args.threads)
    generator = Generator(args.port, args.timeout, token)
    results = []
    try:
        portal.start()
        meter = CpuMeter(portal.process.pid, database, redis_pid(os.environ["REDIS_URL"]))
        for name, measured, warming in runs:
            if warming:
                _, warm_records = run(warming, 4 * interval, args.client_threads, generator.call)
                print(f"{name}: warm-up {len(warming)} calls at {args.rate / 4:.0f} req/s, "
                      f"{sum('wrong' in r for r in warm_records)} wrong (not counted)", flush=True)
            load_before, cpu_before = os.getloadavg(), meter.snapshot()
            start, records = run(measured, interval, args.client_threads, generator.call)
            results.append((name, measured, warming, start, records, cpu_before, meter.snapshot(), load_before,
                            os.getloadavg()))
    finally:
        portal.stop()

    checks = {}
    paid = 0
    for name, measured, warming, start, records, cpu_before, cpu_after, load_before, load_after in results:
        print(f"\n== {name}")
        served, p99, wrong = report(args.rate, interval, len(measured), start, records, ["unblocking", "plain"],
                                    args.client_threads)
        # per call sent: the portal carries out a call whose client gave up waiting (it was queued)
        report_cpu(cpu_before, cpu_after, len(measured), database, load_before, load_after, "calls sent")
        paid += len(measured) + len(warming)
        if name == "provider pay":
            checks = {f"p99 <= {args.p99_ms:g} ms": p99["any call"] <= args.p99_ms,
                      f"served >= {args.rate * 0.995:g} req/s": served >= args.rate * 0.995,
                      "every answer right": not wrong}
    state_ok, state = end_state(paid)
    print(f"\nend state: {state}")
    checks["end state right"] = state_ok
    print("target (provider pay): " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    ok = all(checks.values())
    print("target", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
