#!/usr/bin/env python
"""Benchmark of the payment agents' provider protocol, ``command=pay``, open loop (bench/README.md).

    .venv/bin/python bench/provider.py [--rate 200] [--seconds 10] [--database-url URL] [--redis-url URL]
                                       [--server gunicorn|werkzeug] [--workers N] [--threads N]

Built like bench/upsale.py, whose helpers it uses (the database, gunicorn's settings, the CPU
meter, the boot wait): prepares a fresh database (SQLite in a temporary instance directory, or
the PostgreSQL database named by --database-url, whose name must contain "bench") with a payment
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
answer, or the schedule's length if longer), how late the generator was, p50/p95/p99/max, the
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
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from upsale import (  # noqa: E402  (the same machinery as the upsale bench)
    SERVE,
    CpuMeter,
    _reset_schema,
    ensure_database,
    gunicorn_settings,
    pct,
    pool_options,
    redis_pid,
    wait_for_workers,
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
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
                conn.exec_driver_sql("CHECKPOINT")
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
    """Open loop: ``threads`` threads take the next pay off the schedule, sleep until it is due,
    send it on a fresh connection (as gunicorn.conf.py closes each: keepalive 0)."""

    def __init__(self, port: int, threads: int, timeout: float, token: str = ""):
        self.port, self.threads, self.timeout, self.token = port, threads, timeout, token
        self.auth = "Basic " + base64.b64encode(f"{SLUG}:{SECRET}".encode()).decode()

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

    def run(self, calls: list[dict], interval: float, lead: float = 0.2) -> tuple[float, list[dict]]:
        records = [{} for _ in calls]
        lock, nxt = threading.Lock(), [0]
        start = time.monotonic() + lead

        def worker() -> None:
            while True:
                with lock:
                    k = nxt[0]
                    if k >= len(calls):
                        return
                    nxt[0] += 1
                due = start + k * interval
                rec = records[k]
                rec["due"] = due
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                rec["sent"], rec["late_pick"] = time.monotonic(), delay <= 0
                try:
                    status, result = self.send(calls[k])
                except OSError as e:
                    rec["wrong"] = ("error", repr(e))
                    continue
                rec["done"] = t = time.monotonic()
                rec["ms"] = (t - due) * 1000
                if status not in (200, 201) or result != 0:
                    rec["wrong"] = (status, result)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.threads, len(calls)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return start, records


def schedule(contracts: list[tuple[int, str]], tag: str, api: bool = False) -> list[dict]:
    """Two pays per contract, the second after every contract had its first (``api``: the same
    payments as API v1 bodies, the reference)."""
    when = time.strftime("%Y%m%d%H%M%S")
    if api:
        return [{"api": {"contract_id": ident, "amount": FIRST if n == 1 else SECOND, "external_id": f"{tag}{n}{i}"}}
                for n in (1, 2) for i, (ident, _number) in enumerate(contracts)]
    return [{"command": "pay", "txn_id": f"{tag}{n}{i}", "txn_date": when, "account": number,
             "sum": FIRST if n == 1 else SECOND}
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
    instance = tempfile.mkdtemp(prefix="bench-provider-")
    os.environ["PORTAL_INSTANCE"] = instance
    database = None
    if args.database_url:
        database = urlsplit(args.database_url).path.lstrip("/")
        if "bench" not in database:
            sys.exit("the database name must contain 'bench' (its schema is dropped and recreated)")
        ensure_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
        os.environ.setdefault("SECRET_KEY", "bench-secret")
        from cryptography.fernet import Fernet

        os.environ.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)",
          flush=True)
    started = time.monotonic()
    half = (pays + warm) // 2
    contracts, token = prepare(half * (2 if args.reference else 1))
    print(f"prepared {len(contracts)} balance-blocked contracts in {time.monotonic() - started:.1f}s "
          f"({'PostgreSQL ' + database if database else 'SQLite in ' + instance})", flush=True)
    if not os.environ.get("REDIS_URL"):
        from portal import create_app
        from portal.queue import redis_url_for_children

        with create_app().app_context():
            os.environ["REDIS_URL"] = redis_url_for_children()
    print(f"pool: {pool_options(None)}", flush=True)
    runs = [("provider pay", schedule(contracts[:pays // 2], "m"), schedule(contracts[pays // 2:half], "w"))]
    if args.reference:  # the same payments through API v1, on their own contracts, after the provider's
        ref = contracts[half:]
        runs.append(("reference: API v1 payment", schedule(ref[:pays // 2], "rm", api=True),
                     schedule(ref[pays // 2:], "rw", api=True)))

    if args.server == "gunicorn":
        command = [str(Path(sys.executable).with_name("gunicorn")), "-b", f"127.0.0.1:{args.port}",
                   "--log-level", "warning", *(["-w", str(args.workers)] if args.workers else []),
                   *(["--threads", str(args.threads)] if args.threads else []), "wsgi:app"]
        settings = gunicorn_settings(command)
        print(f"portal: gunicorn wsgi:app; {settings}", flush=True)
        expected = args.workers or int(dict(part.split(" ", 1) for part in settings.split(", ")
                                            if " " in part).get("workers", 1))
    else:
        command = [sys.executable, "-c", SERVE.format(module="wsgi"), str(args.port), str(ROOT)]
        print("portal: werkzeug threaded dev server, wsgi:app", flush=True)
        expected = 0
    server = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    meter = CpuMeter(server.pid, database, redis_pid(os.environ["REDIS_URL"]))
    generator = Generator(args.port, args.client_threads, args.timeout, token)
    results = []
    try:
        for _ in range(300):
            if server.poll() is not None:
                sys.exit(f"the portal's process exited with {server.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        print(f"workers: {wait_for_workers(server.pid, expected)}", flush=True)
        for name, measured, warming in runs:
            if warming:
                _, warm_records = generator.run(warming, 4 * interval)
                print(f"{name}: warm-up {len(warming)} calls at {args.rate / 4:.0f} req/s, "
                      f"{sum('wrong' in r for r in warm_records)} wrong (not counted)", flush=True)
            load_before, cpu_before = os.getloadavg(), meter.snapshot()
            start, records = generator.run(measured, interval)
            results.append((name, measured, warming, start, records, cpu_before, meter.snapshot(), load_before,
                            os.getloadavg()))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()

    checks = {}
    paid = 0
    for name, measured, warming, start, records, cpu_before, cpu_after, load_before, load_after in results:
        p99, served, wrong = report(name, args.rate, interval, measured, start, records, cpu_before, cpu_after,
                                    load_before, load_after, database)
        paid += len(measured) + len(warming)
        if name == "provider pay":
            checks = {f"p99 <= {args.p99_ms:g} ms": p99 <= args.p99_ms,
                      f"served >= {args.rate * 0.995:g} req/s": served >= args.rate * 0.995,
                      "every answer right": not wrong}
    state_ok, state = end_state(paid)
    print(f"\nend state: {state}")
    checks["end state right"] = state_ok
    print("target (provider pay): " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    ok = all(checks.values())
    print("target", "met" if ok else "NOT met")
    return 0 if ok else 1


def report(name, rate, interval, measured, start, records, cpu_before, cpu_after, load_before, load_after,
           database) -> tuple[float, float, list]:
    """Print one run's rates, latencies, wrong answers and CPU; returns (p99, served, wrong)."""
    done = [r["done"] for r in records if "done" in r]
    wrong = [r["wrong"] for r in records if "wrong" in r]
    elapsed = max(max(done, default=start) - start, len(measured) * interval)
    served = len(done) / elapsed if elapsed > 0 else 0.0
    print(f"\n== {name}")
    print(f"offered {rate:.0f} req/s: {len(measured)} calls due over {len(measured) * interval:.2f} s")
    right = sum(1 for r in records if "done" in r and "wrong" not in r)
    print(f"served  {served:.1f} req/s: {len(done)} answers ({right} right) over {elapsed:.2f} s")
    lag = [(r["sent"] - r["due"]) * 1000 for r in records if "sent" in r]
    late_pick = sum(1 for r in records if r.get("late_pick"))
    print(f"generator: sent after the due time by p50 {pct(lag, 50):.2f} ms, p99 {pct(lag, 99):.2f} ms; "
          f"{late_pick} found no free thread at their due time")
    ms = [r["ms"] for r in records if "ms" in r]
    first, second = ms[:len(ms) // 2], ms[len(ms) // 2:]
    print("latency from the due time:")
    for label, values in (("all", ms), ("unblocking", first), ("plain", second)):
        print(f"  {label:10s} p50 {pct(values, 50):7.1f} ms  p95 {pct(values, 95):7.1f} ms  "
              f"p99 {pct(values, 99):7.1f} ms  max {max(values or [float('nan')]):7.1f} ms  (n={len(values)})")
    print(f"wrong answers: {len(wrong)}" + (f"; first: {wrong[0]}" if wrong else ""))
    if cpu_before and cpu_after and measured:
        # per call sent: the portal carries out a call whose client gave up waiting (it was queued)
        window, busy, roles = CpuMeter.used(cpu_before, cpu_after)
        ours, cpus, n = sum(roles.values()), os.cpu_count() or 1, len(measured)
        print(f"CPU per call ({n} calls sent, {len(done)} answered, {window:.2f} s, {cpus} CPUs): " + ", ".join(
            f"{role} {used / n * 1000:.2f} ms" for role, used in roles.items()
            if database or not role.startswith("PostgreSQL")) + f"; total {ours / n * 1000:.2f} ms")
        print(f"  machine busy {busy / window / cpus * 100:.0f}% of {cpus} CPUs: this bench's processes "
              f"{ours / window / cpus * 100:.0f}%, other processes {(busy - ours) / window / cpus * 100:.0f}%; "
              f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    return pct(ms, 99), served, wrong


if __name__ == "__main__":
    sys.exit(main())
