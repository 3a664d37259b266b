#!/usr/bin/env python
"""Benchmark of the «Смотрёшка» upsale v3 endpoints, open loop (see bench/README.md).

    .venv/bin/python bench/upsale.py [--rate 200] [--seconds 10] [--database-url URL] [--redis-url URL]
                                     [--server gunicorn|werkzeug] [--pre-ping config|on|off]

Prepares a fresh database (a SQLite file in a temporary instance directory, or the PostgreSQL
database named by --database-url, whose name must contain "bench": it is created if missing and
its schema is dropped and recreated) with one TV account per pair, each with money and a basic
TV service; starts the portal as a separate process the way production serves it (gunicorn with
the repository's gunicorn.conf.py; ``--workers``/``--threads`` override it; ``--server
werkzeug`` for the threaded dev server of ``make run``) with a «Смотрёшка» connection whose
callback credentials and allowlist the bench uses; then offers ensure+commit pairs on a fixed
schedule, one additional subscription per account and pair.

Open loop, no coordinated omission: pair k is *due* at start + k × 2/rate whether or not
earlier pairs have answered, and its ensure is timed from that due time, so a call that had to
wait (for a free load-generator thread, or because the generator itself was late) counts that
wait as latency. A commit can only be sent once its ensure has answered (it carries the
billingTransactionId ensure returned), so a commit is due at the moment its ensure answered and
is timed from then; the pair is timed from the ensure's due time to the commit's answer.

Prints: the offered rate and the served rate (answers per second over the real elapsed time:
from the first due time to the last answer, or the schedule's length if that is longer), how
late the generator sent calls against the schedule, p50/p95/p99/max of ensure, commit, any
call (pooled) and the pair, the wrong answers (a non-200 status, an unexpected result, a
transport error or timeout), the gunicorn settings and the SQLAlchemy pool options the portal
ran with, and the CPU each call cost the portal (gunicorn master + workers), PostgreSQL (the
backends of the bench database; the server's own background processes apart), Redis and this
load generator, from /proc, beside the CPU the rest of the machine used meanwhile.

Target (exit code 0 only when all are met): p99 of ensure and p99 of commit <= --p99-ms (50),
served >= 99.5 % of the offered rate (199 req/s at 200), and every answer right.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import sys
import time
import uuid
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

LOGIN, PASSWORD = "lifestream", "bench-Callback-1"
BASE = "/upsale/v3/add-subscription"


# -- the database --------------------------------------------------------------------------------

def prepare(n: int, overrides: dict | None) -> list[tuple[str, str]]:
    """N accounts with a basic TV service; returns their (login, platform id) pairs."""
    from decimal import Decimal

    from portal import create_app
    from portal.billing import accounts as acc
    from portal.billing import directory, ledger
    from portal.extensions import db
    from portal.models import SyncState
    from portal.platforms.connections import save_connection

    app = create_app(overrides)
    with app.app_context():
        _reset_schema(db)
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
        settle(db)
    return out


# -- the portal's process ------------------------------------------------------------------------

# The app with pool_pre_ping switched by the bench (--pre-ping on|off): the portal reads no
# environment variable for it, so the bench loads this module (in its temporary instance
# directory) instead of wsgi.py; everything else is create_app() exactly as wsgi.py builds it.
PRE_PING_APP = """
from portal import config, create_app

_options = dict(config.load().get("SQLALCHEMY_ENGINE_OPTIONS") or {{}})
_options["pool_pre_ping"] = {value}
app = create_app({{"SQLALCHEMY_ENGINE_OPTIONS": _options}})
"""


# -- the load generator --------------------------------------------------------------------------

def _json(raw: bytes) -> dict | str:
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:200].decode(errors="replace")


def _unchunk(payload: bytes) -> bytes:
    out, rest = [], payload
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)


class Generator:
    """The calls of a pair (``one_pair``, run by openloop.run on the schedule)."""

    def __init__(self, port: int, threads: int, timeout: float, client: str = "raw"):
        self.port, self.threads, self.timeout = port, threads, timeout
        self.auth = "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
        self.post = self.post_raw if client == "raw" else self.post_http_client

    # Every call on a fresh connection (gunicorn.conf.py closes every connection after its
    # response: keepalive = 0); the connect is part of the call's time, as for the platform.

    def post_http_client(self, path: str, query: dict, body: dict | None = None) -> tuple[int, dict | str]:
        """The call through http.client (--client http.client; about 0.3 ms more CPU per call)."""
        headers = {"Authorization": self.auth, "Connection": "close"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("POST", f"{BASE}/{path}?{urlencode(query)}", body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, _json(raw)

    def post_raw(self, path: str, query: dict, body: dict | None = None) -> tuple[int, dict | str]:
        """The same HTTP/1.1 request written on a plain socket, the answer read to the end of its
        body (Content-Length; else to the server's close). The load generator shares the CPUs
        with the portal; this costs it about 0.3 ms of CPU per call less than http.client (its
        header objects and parser)."""
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"POST {BASE}/{path}?{urlencode(query)} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: {self.auth}\r\nConnection: close\r\nContent-Length: {len(data)}\r\n"
                + ("Content-Type: application/json\r\n" if body is not None else "") + "\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as sock:
            sock.sendall(head + data)
            raw, length, body_at = b"", None, -1
            while chunk := sock.recv(65536):  # to the end of the body (Content-Length), or the close
                raw += chunk
                if body_at < 0 and (end := raw.find(b"\r\n\r\n")) >= 0:
                    body_at = end + 4
                    for line in raw[:end].split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                if length is not None and len(raw) - body_at >= length:
                    break
        head_bytes, sep, payload = raw.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise http.client.BadStatusLine(repr(raw[:80]))
        if length is not None:
            if len(payload) < length:
                raise http.client.IncompleteRead(payload, length - len(payload))
            payload = payload[:length]
        elif any(line.lower().replace(b" ", b"") == b"transfer-encoding:chunked" for line in lines[1:]):
            payload = _unchunk(payload)
        return int(parts[1]), _json(payload)

    def one_pair(self, item: tuple[int, tuple[str, str]], due: float, rec: dict) -> None:
        """Ensure, due at ``due``, then commit, due when ensure answered (it carries ensure's
        billingTransactionId); the pair from ensure's due time to commit's answer."""
        k, (login, pid) = item
        q = {"accountId": pid, "accountLogin": login, "newOfferId": "201",
             "qsTransactionId": f"qs-{k}-{uuid.uuid4()}"}
        try:
            status, answer = self.post("ensure", q, {"clientIp": "10.0.0.1"})
        except (OSError, http.client.HTTPException) as e:
            rec["wrong"] = ("ensure", "error", repr(e))
            return
        t1 = time.monotonic()
        rec["ms"]["ensure"] = (t1 - due) * 1000
        rec["answered"].append(t1)
        if status != 200 or not isinstance(answer, dict) or answer.get("result") != "operation_ensured":
            rec["wrong"] = ("ensure", status, answer)
            return
        q["billingTransactionId"] = answer["billingTransactionId"]
        try:
            status, answer = self.post("commit", q)
        except (OSError, http.client.HTTPException) as e:
            rec["wrong"] = ("commit", "error", repr(e))
            return
        t2 = time.monotonic()
        rec["ms"]["commit"] = (t2 - t1) * 1000  # due when its ensure answered
        rec["ms"]["pair"] = (t2 - due) * 1000
        rec["answered"].append(t2)
        if status != 200 or not isinstance(answer, dict) or answer.get("result") != "operation_commited":
            rec["wrong"] = ("commit", status, answer)


# -- main ----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests offered per second (two per pair)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured schedule")
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--database-url", default=None, help="PostgreSQL; its name must contain 'bench'")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads; default: gunicorn.conf.py's")
    parser.add_argument("--pre-ping", choices=("config", "on", "off"), default="config",
                        help="pool_pre_ping as portal/config.py sets it, or forced on/off for this run")
    parser.add_argument("--client-threads", type=int, default=256,
                        help="load-generator threads (each holds one pair at a time)")
    parser.add_argument("--client", choices=("raw", "http.client"), default="raw",
                        help="how the load generator writes its HTTP (same requests; raw costs less CPU)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a call counts as failed")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of pairs at a quarter of the rate, on their own accounts, not counted")
    parser.add_argument("--p99-ms", type=float, default=50.0, help="target for p99 of ensure and of commit")
    args = parser.parse_args()

    interval = 2 / args.rate  # a pair is two requests
    pairs_total = int(round(args.seconds / interval))
    warm_total = int(round(args.warmup / (4 * interval)))
    instance, database = environment("bench-upsale-", args.database_url, args.redis_url)
    module = "wsgi"
    overrides = None
    if args.pre_ping != "config":
        from portal import config

        options = dict(config.load().get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["pool_pre_ping"] = args.pre_ping == "on"
        overrides = {"SQLALCHEMY_ENGINE_OPTIONS": options}
        module = "bench_upsale_app"
        Path(instance, f"{module}.py").write_text(PRE_PING_APP.format(value=args.pre_ping == "on"))

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs); "
          f"speed reference {speed_reference():.1f} ms (a fixed loop's CPU: higher = slower)", flush=True)
    started = time.monotonic()
    accounts = prepare(pairs_total + warm_total, overrides)
    print(f"prepared {len(accounts)} accounts in {time.monotonic() - started:.1f}s "
          f"({'PostgreSQL ' + database if database else 'SQLite in ' + instance})", flush=True)
    embedded_redis()
    print(f"pool: {pool_options(overrides)}", flush=True)

    portal = Portal(args.port, args.server, module, instance, args.workers, args.threads)
    generator = Generator(args.port, args.client_threads, args.timeout, args.client)
    pairs = list(enumerate(accounts))
    try:
        portal.start()
        meter = CpuMeter(portal.process.pid, database, redis_pid(os.environ["REDIS_URL"]))
        if warm_total:  # every worker process opens its connections and warms up first
            _, warm = run(pairs[pairs_total:], 4 * interval, args.client_threads, generator.one_pair)
            print(f"warm-up: {warm_total} pairs at {args.rate / 4:.0f} req/s, "
                  f"{sum('wrong' in r for r in warm)} wrong (not counted)", flush=True)
        load_before, cpu_before = os.getloadavg(), meter.snapshot()
        start, records = run(pairs[:pairs_total], interval, args.client_threads, generator.one_pair)
        cpu_after, load_after = meter.snapshot(), os.getloadavg()
    finally:
        portal.stop()

    print("\n(ensure from its due time; commit from its ensure's answer; pair from due to commit's answer)")
    served, p99, wrong = report(args.rate, interval, 2 * pairs_total, start, records,
                                ["ensure", "commit", "pair"], args.client_threads, pooled=["ensure", "commit"])
    answered = sum(len(r["answered"]) for r in records)
    report_cpu(cpu_before, cpu_after, answered, database, load_before, load_after, "answers")

    min_served = args.rate * 0.995
    commits = sum(1 for r in records if "commit" in r["ms"])
    checks = {
        f"p99 ensure <= {args.p99_ms:g} ms": p99["ensure"] <= args.p99_ms,
        f"p99 commit <= {args.p99_ms:g} ms": p99["commit"] <= args.p99_ms,
        f"served >= {min_served:g} req/s": served >= min_served,
        "every answer right": not wrong and commits == pairs_total,
    }
    print("target: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items()))
    ok = all(checks.values())
    print("target", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
