#!/usr/bin/env python
"""Benchmark of the «Смотрёшка» upsale v3 endpoints (see bench/README.md).

    .venv/bin/python bench/upsale.py [--rate 200] [--seconds 15] [--accounts N] [--database-url URL]

Prepares a fresh database (a SQLite file in a temporary instance directory, or the PostgreSQL
database named by --database-url, whose name must contain "bench": it is dropped and created)
with N TV accounts, each with money and a basic TV service; starts the portal as a separate
process the way production serves it (gunicorn with the repository's gunicorn.conf.py;
``--workers``/``--threads`` override it; ``--server werkzeug`` for the threaded dev server of
``make run``) with a «Смотрёшка» connection whose callback credentials and allowlist the bench
uses; then drives ensure+commit pairs at a fixed rate (open loop: each pair starts on its
schedule whether or not earlier ones have answered), one additional subscription per account and
pair, and prints p50/p95/p99/max of each call and of the pairs, the count of wrong answers, and
the CPU each call cost the portal, PostgreSQL and the load generator (all on this machine).
Target: p99 of a call <= 50 ms at 200 requests/s. The exit code is 0 when the target is met and
every answer was right.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOGIN, PASSWORD = "lifestream", "bench-Callback-1"


def prepare(n: int) -> list[tuple[str, str]]:
    """N accounts with a basic TV service; returns their (login, platform id) pairs."""
    from decimal import Decimal

    from portal import create_app
    from portal.billing import accounts as acc
    from portal.billing import directory, ledger
    from portal.extensions import db
    from portal.models import SyncState
    from portal.platforms.connections import save_connection

    app = create_app()
    with app.app_context():
        db.drop_all()
        db.create_all()
        save_connection("smotreshka", url="http://127.0.0.1:9", login=LOGIN, password=PASSWORD,
                        options={"login_prefix": "b_", "upsale_allowed_ips": "127.0.0.1/32"}, actor="bench")
        basic = directory.save_service({"name": "Базовый", "price": "199.00", "platform": "smotreshka",
                                        "external_id": "101", "iptv_kind": "basic"}, actor="bench")
        extra = directory.save_service({"name": "Кино", "price": "299.00", "platform": "smotreshka",
                                        "external_id": "201", "iptv_kind": "additional"}, actor="bench")
        tariff = directory.save_tariff({"name": "ТВ", "kind": "services", "service_ids": [basic.id, extra.id]},
                                       actor="bench")
        agent = directory.save_agent({"name": "ТВ", "kind": "services", "platform": "smotreshka"}, actor="bench")
        out = []
        for i in range(n):
            s = directory.save_subscriber({"full_name": f"Абонент {i}"}, actor="bench")
            c = directory.save_contract({"subscriber_id": s.id}, actor="bench")
            ledger.payment(c.id, Decimal("5000"), actor="bench", external_id=f"bench-{i}")
            a = acc.create_account({"contract_id": c.id, "login": f"tv{i}", "agent_id": agent.id,
                                    "tariff_id": tariff.id}, actor="bench")
            acc.activate(a, actor="bench")
            acc.assign_service(a, {"service_id": basic.id}, actor="bench")
            pid = uuid.uuid4().hex[:24]
            db.session.add(SyncState(account_id=a.id, platform="smotreshka", state="ok", attempts=0,
                                     actual={"id": pid, "username": f"b_tv{i}", "subscriptions": ["101"]}))
            out.append((f"b_tv{i}", pid))
            if i % 200 == 199:
                db.session.commit()
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # Statistics and a clean slate for the tables just filled, as a live database has:
            # otherwise autovacuum and a checkpoint start on them in the middle of the run.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
                conn.exec_driver_sql("CHECKPOINT")
    return out


SERVE = """
import logging, sys
from werkzeug.serving import run_simple
from portal import create_app
logging.getLogger("werkzeug").setLevel(logging.ERROR)
run_simple("127.0.0.1", int(sys.argv[1]), create_app(), threaded=True, use_reloader=False)
"""


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time used so far by the portal (the server and its worker processes), PostgreSQL's
    processes and this load generator; Linux /proc, empty elsewhere."""
    if not os.path.isdir("/proc"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out = {"portal": 0.0, "PostgreSQL": 0.0, "Redis": 0.0, "load generator": sum(os.times()[:2])}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(pid) == server_pid or int(fields[1]) == server_pid:
            out["portal"] += used
        elif name.startswith("postgres"):
            out["PostgreSQL"] += used
        elif name.startswith("redis-server"):
            out["Redis"] += used
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (two per pair)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--accounts", type=int, default=0, help="default: one per pair")
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--threads", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of pairs at a quarter of the rate, on their own accounts, not counted")
    args = parser.parse_args()

    pairs_total = int(args.rate / 2 * args.seconds)
    instance = tempfile.mkdtemp(prefix="bench-upsale-")
    os.environ["PORTAL_INSTANCE"] = instance
    if args.database_url:
        if "bench" not in args.database_url.rsplit("/", 1)[-1]:
            sys.exit("the database name must contain 'bench' (it is dropped and recreated)")
        os.environ["DATABASE_URL"] = args.database_url
        os.environ.setdefault("SECRET_KEY", "bench-secret")
        from cryptography.fernet import Fernet

        os.environ.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    warm_total = int(args.rate / 8 * args.warmup)
    n = (args.accounts or pairs_total) + warm_total
    started = time.monotonic()
    accounts = prepare(n)
    print(f"prepared {n} accounts in {time.monotonic() - started:.1f}s ({'PostgreSQL' if args.database_url else 'SQLite'})")
    if not os.environ.get("REDIS_URL"):  # the portal's process and the worker-less outbox hook need a Redis
        from portal import create_app
        from portal.queue import redis_url_for_children

        with create_app().app_context():
            os.environ["REDIS_URL"] = redis_url_for_children()
    if args.server == "gunicorn":
        # gunicorn.conf.py (the production settings) is read from ROOT; flags override it
        command = [str(Path(sys.executable).with_name("gunicorn")), "-b", f"127.0.0.1:{args.port}",
                   "--log-level", "warning", "wsgi:app"]
        command[1:1] = [*(["-w", str(args.workers)] if args.workers else []),
                        *(["--threads", str(args.threads)] if args.threads else [])]
    else:
        command = [sys.executable, "-c", SERVE, str(args.port)]
    server = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    print(f"portal: {args.server}" + (f" (gunicorn.conf.py; workers {args.workers or 'as set there'}, threads "
                                      f"{args.threads or 'as set there'})" if args.server == "gunicorn" else ""),
          flush=True)
    # http.client on kept-alive connections: requests cost the load generator (on the same CPUs
    # as the portal and PostgreSQL) about three times as much per call
    auth = {"Authorization": "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()}
    base = "/upsale/v3/add-subscription"
    local = threading.local()
    ensure_ms, commit_ms, pair_ms, wrong = [], [], [], []
    counted = n - warm_total  # the last warm_total accounts are the warm-up's

    def post(path: str, query: dict, body: dict | None = None) -> dict:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
        headers = dict(auth)
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        try:
            conn.request("POST", f"{base}/{path}?{urlencode(query)}", body=data, headers=headers)
            return json.loads(conn.getresponse().read())
        except (OSError, http.client.HTTPException):
            local.conn = None
            conn.close()
            raise

    def one_pair(i: int) -> None:
        login, pid = accounts[i] if i < 0 else accounts[i % counted]  # i < 0: the warm-up's accounts
        q = {"accountId": pid, "accountLogin": login, "newOfferId": "201", "qsTransactionId": f"qs-{i}-{uuid.uuid4()}"}
        t0 = time.monotonic()
        answer = post("ensure", q, {"clientIp": "10.0.0.1"})
        t1 = time.monotonic()
        ensure_ms.append((t1 - t0) * 1000)
        if answer.get("result") != "operation_ensured":
            wrong.append(("ensure", answer))
            return
        q["billingTransactionId"] = answer["billingTransactionId"]
        answer = post("commit", q)
        t2 = time.monotonic()
        commit_ms.append((t2 - t1) * 1000)
        pair_ms.append((t2 - t0) * 1000)
        if answer.get("result") != "operation_commited":
            wrong.append(("commit", answer))

    interval = 2 / args.rate  # a pair is two requests

    def drive(pool, indices, every: float) -> None:
        start = time.monotonic()
        for k, i in enumerate(indices):
            delay = start + k * every - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one_pair, i)

    try:
        for _ in range(300):  # the workers boot
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        with ThreadPoolExecutor(max_workers=64) as pool:  # every worker process and thread warms up first
            drive(pool, range(-warm_total, 0), 4 * interval)
        if warm_total:
            print(f"warm-up: {warm_total} pairs, {len(wrong)} wrong", flush=True)
        ensure_ms.clear(), commit_ms.clear(), pair_ms.clear(), wrong.clear()
        cpu_before = cpu_seconds(server.pid)
        with ThreadPoolExecutor(max_workers=64) as pool:
            start = time.monotonic()
            drive(pool, range(pairs_total), interval)
        elapsed = time.monotonic() - start
        cpu_used = {k: v - cpu_before[k] for k, v in cpu_seconds(server.pid).items()}
    finally:
        server.terminate()
        server.wait(timeout=10)
    calls = ensure_ms + commit_ms
    print(f"{pairs_total} pairs ({len(calls)} calls) in {elapsed:.1f}s = {len(calls) / elapsed:.0f} req/s offered "
          f"{args.rate:.0f}; wrong answers: {len(wrong)}")
    for name, values in (("ensure", ensure_ms), ("commit", commit_ms), ("any call", calls), ("pair", pair_ms)):
        print(f"  {name:9s} p50 {pct(values, 50):6.1f} ms  p95 {pct(values, 95):6.1f} ms  "
              f"p99 {pct(values, 99):6.1f} ms  max {max(values or [0]):6.1f} ms  (n={len(values)})")
    if cpu_used and calls:
        print(f"  CPU per call ({os.cpu_count()} CPUs here): " + ", ".join(
            f"{name} {used / len(calls) * 1000:.1f} ms" for name, used in cpu_used.items() if used)
            + f"; busy {sum(cpu_used.values()) / elapsed / os.cpu_count() * 100:.0f}% of the machine")
    if wrong:
        print("  first wrong answer:", wrong[0])
    ok = not wrong and pct(calls, 99) <= 50
    print("target p99 <= 50 ms:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
