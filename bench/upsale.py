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
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOGIN, PASSWORD = "lifestream", "bench-Callback-1"
BASE = "/upsale/v3/add-subscription"


# -- the database --------------------------------------------------------------------------------

def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def _reset_schema(db) -> None:
    """The portal's reset_schema; an older commit (a reference run) may not have it."""
    try:
        from portal.db_setup import reset_schema
    except ImportError:
        reset_schema = None
    if reset_schema is not None:
        return reset_schema(db)
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    else:
        db.drop_all()
    db.create_all()


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
        if db.engine.dialect.name == "postgresql":
            # Statistics and a clean slate for the tables just filled, as a live database has:
            # otherwise autovacuum and a checkpoint start on them in the middle of the run.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
                conn.exec_driver_sql("CHECKPOINT")
    return out


def pool_options(overrides: dict | None) -> str:
    """The SQLAlchemy engine options and pool the portal's processes build from the same
    settings (each gunicorn worker has its own engine and pool)."""
    from portal import create_app
    from portal.extensions import db

    app = create_app(overrides)
    with app.app_context():
        pool = db.engine.pool
        parts = [f"SQLALCHEMY_ENGINE_OPTIONS={app.config.get('SQLALCHEMY_ENGINE_OPTIONS')!r}",
                 f"pool {type(pool).__name__}"]
        if hasattr(pool, "size"):
            parts.append(f"size {pool.size()}")
        for attr, label in (("_max_overflow", "max_overflow"), ("_timeout", "timeout"), ("_recycle", "recycle"),
                            ("_pre_ping", "pre_ping")):
            if hasattr(pool, attr):
                parts.append(f"{label} {getattr(pool, attr)}")
        return ", ".join(parts)


# -- the portal's process ------------------------------------------------------------------------

SERVE = """
import logging, sys
from werkzeug.serving import run_simple
sys.path.insert(0, sys.argv[2])
from {module} import app
logging.getLogger("werkzeug").setLevel(logging.ERROR)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True, use_reloader=False)
"""

# The app with pool_pre_ping switched by the bench (--pre-ping on|off): the portal reads no
# environment variable for it, so the bench loads this module (in its temporary instance
# directory) instead of wsgi.py; everything else is create_app() exactly as wsgi.py builds it.
PRE_PING_APP = """
from portal import config, create_app

_options = dict(config.load().get("SQLALCHEMY_ENGINE_OPTIONS") or {{}})
_options["pool_pre_ping"] = {value}
app = create_app({{"SQLALCHEMY_ENGINE_OPTIONS": _options}})
"""


def gunicorn_settings(command: list[str]) -> str:
    """The settings gunicorn resolves from gunicorn.conf.py, the flags and the environment."""
    wanted = ("bind", "workers", "worker_class", "threads", "keepalive", "timeout", "backlog",
              "max_requests", "preload_app", "worker_connections", "config")
    try:
        out = subprocess.run([*command, "--print-config"], cwd=ROOT, env=os.environ.copy(), capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(gunicorn --print-config failed: {e})"
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in wanted:
            found[key.strip()] = value.strip()
    return ", ".join(f"{k} {found[k]}" for k in wanted if k in found) or "(gunicorn --print-config said nothing)"


# -- CPU accounting (Linux /proc) ----------------------------------------------------------------

def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, "name: command line", CPU seconds used so far)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        comm, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        out[int(pid)] = (int(fields[1]), f"{comm}: {cmdline}", (int(fields[11]) + int(fields[12])) / tick)
    return out


def _machine_busy() -> float:
    """CPU seconds all CPUs of the machine have been busy (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU per role between two snapshots: the portal (the server process and its descendants),
    PostgreSQL (backends of the bench database; the server's background processes, which every
    database shares, are shown apart), Redis (the server process the portal uses, by the
    process_id it reports) and this load generator; the rest of the machine as "other"."""

    def __init__(self, server_pid: int, database: str | None, redis_pid: int | None):
        self.server_pid, self.database, self.redis_pid = server_pid, database, redis_pid
        self.enabled = os.path.isdir("/proc")

    def _role(self, pid: int, procs: dict) -> str | None:
        ppid, cmdline, _ = procs[pid]
        if pid == os.getpid():
            return "load generator"
        if pid == self.redis_pid:
            return "Redis"
        seen, p = set(), pid
        while p in procs and p not in seen:  # the portal: the server and everything under it
            if p == self.server_pid:
                return "portal"
            seen.add(p)
            p = procs[p][0]
        if cmdline.startswith("postgres:"):  # the postmaster and its children are all named postgres
            words = cmdline.split()
            if self.database and self.database in words:
                return "PostgreSQL"
            if any("(" in w and w.endswith(")") for w in words):  # a backend of another database
                return None
            return "PostgreSQL background"  # postmaster, checkpointer, walwriter, ...
        return None

    def snapshot(self) -> tuple[float, float, dict[int, tuple[str | None, float]]] | None:
        if not self.enabled:
            return None
        procs = _processes()
        return time.monotonic(), _machine_busy(), {pid: (self._role(pid, procs), procs[pid][2]) for pid in procs}

    @staticmethod
    def used(before, after) -> tuple[float, float, dict[str, float]]:
        """(seconds elapsed, machine CPU seconds busy, CPU seconds per role) between snapshots."""
        roles: dict[str, float] = {"portal": 0.0, "PostgreSQL": 0.0, "PostgreSQL background": 0.0, "Redis": 0.0,
                                   "load generator": 0.0}
        for pid, (role, cpu) in after[2].items():
            if role is not None:
                prior = before[2].get(pid)
                roles[role] += cpu - (prior[1] if prior and prior[0] == role else 0.0)
        return after[0] - before[0], after[1] - before[1], roles


def wait_for_workers(server_pid: int, expected: int, quiet_cpu: float = 0.05, limit: float = 120.0) -> str:
    """Wait until every worker process has booted: the first answer only says that one worker
    has. A worker still importing the app burns a second or more of CPU, which would otherwise
    be counted as the CPU of the calls measured (it was, up to 2026-12-03: 4-5 ms per call).
    Booted = the expected number of workers exist and the portal's processes, idle, use less
    than ``quiet_cpu`` CPU seconds in half a second."""
    started, last = time.monotonic(), None
    while time.monotonic() - started < limit:
        procs = _processes()
        workers = [pid for pid, (ppid, _c, _t) in procs.items() if ppid == server_pid]
        cpu = sum(procs[pid][2] for pid in [server_pid, *workers] if pid in procs)
        if last is not None and len(workers) >= expected and cpu - last < quiet_cpu:
            return f"{len(workers) or 1} booted in {time.monotonic() - started:.1f} s"
        last = cpu
        time.sleep(0.5)
    return f"still booting after {limit:.0f} s (the CPU figures include boot work)"


def redis_pid(url: str) -> int | None:
    try:
        import redis

        info = redis.Redis.from_url(url, socket_timeout=5).info("server")
        host = urlsplit(url).hostname
        return int(info["process_id"]) if url.startswith("unix") or host in ("127.0.0.1", "localhost", "::1") \
            else None
    except Exception:  # noqa: BLE001 - a report line, not a reason to stop
        return None


# -- the load generator --------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))]


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
    """Open-loop driver: ``threads`` threads take the next pair off the schedule, sleep until it
    is due, send it. A pair whose due time passed before a thread was free starts late, and the
    lateness is in its latency (timed from the due time)."""

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

    def one_pair(self, k: int, account: tuple[str, str], due: float, late_pick: bool, rec: dict) -> None:
        login, pid = account
        q = {"accountId": pid, "accountLogin": login, "newOfferId": "201",
             "qsTransactionId": f"qs-{k}-{uuid.uuid4()}"}
        rec["sent"] = time.monotonic()
        rec["late_pick"] = late_pick
        rec["answered"], rec["right"] = [], 0
        try:
            status, answer = self.post("ensure", q, {"clientIp": "10.0.0.1"})
        except (OSError, http.client.HTTPException) as e:
            rec["ensure_done"] = time.monotonic()
            rec["wrong"] = ("ensure", "error", repr(e))
            return
        rec["ensure_done"] = t1 = time.monotonic()
        rec["ensure_ms"] = (t1 - due) * 1000
        rec["answered"].append(t1)
        if status != 200 or not isinstance(answer, dict) or answer.get("result") != "operation_ensured":
            rec["wrong"] = ("ensure", status, answer)
            return
        rec["right"] += 1
        q["billingTransactionId"] = answer["billingTransactionId"]
        try:
            status, answer = self.post("commit", q)
        except (OSError, http.client.HTTPException) as e:
            rec["commit_done"] = time.monotonic()
            rec["wrong"] = ("commit", "error", repr(e))
            return
        rec["commit_done"] = t2 = time.monotonic()
        rec["commit_ms"] = (t2 - t1) * 1000  # due when its ensure answered
        rec["pair_ms"] = (t2 - due) * 1000
        rec["answered"].append(t2)
        if status != 200 or not isinstance(answer, dict) or answer.get("result") != "operation_commited":
            rec["wrong"] = ("commit", status, answer)
        else:
            rec["right"] += 1

    def run(self, accounts: list[tuple[str, str]], interval: float, lead: float = 0.2) -> tuple[float, list[dict]]:
        """Pair k (on accounts[k]) due at start + k × interval; returns (start, records)."""
        records = [{"due": 0.0} for _ in accounts]
        lock = threading.Lock()
        nxt = [0]
        start = time.monotonic() + lead  # the threads are up before the first pair is due

        def worker() -> None:
            while True:
                with lock:
                    k = nxt[0]
                    if k >= len(accounts):
                        return
                    nxt[0] += 1
                due = start + k * interval
                records[k]["due"] = due
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    self.one_pair(k, accounts[k], due, delay <= 0, records[k])
                except Exception as e:  # noqa: BLE001 - a broken answer is a wrong one, the thread goes on
                    records[k]["wrong"] = ("pair", "error", repr(e))

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.threads, len(accounts)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return start, records


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
    instance = tempfile.mkdtemp(prefix="bench-upsale-")
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
    module = "wsgi"
    overrides = None
    if args.pre_ping != "config":
        from portal import config

        options = dict(config.load().get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["pool_pre_ping"] = args.pre_ping == "on"
        overrides = {"SQLALCHEMY_ENGINE_OPTIONS": options}
        module = "bench_upsale_app"
        Path(instance, f"{module}.py").write_text(PRE_PING_APP.format(value=args.pre_ping == "on"))

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)",
          flush=True)
    started = time.monotonic()
    accounts = prepare(pairs_total + warm_total, overrides)
    print(f"prepared {len(accounts)} accounts in {time.monotonic() - started:.1f}s "
          f"({'PostgreSQL ' + database if database else 'SQLite in ' + instance})", flush=True)
    if not os.environ.get("REDIS_URL"):  # the portal's process and the worker-less outbox hook need a Redis
        from portal import create_app
        from portal.queue import redis_url_for_children

        with create_app().app_context():
            os.environ["REDIS_URL"] = redis_url_for_children()
    print(f"pool: {pool_options(overrides)}", flush=True)

    if args.server == "gunicorn":
        # gunicorn.conf.py (the production settings) is read from ROOT; flags override it
        command = [str(Path(sys.executable).with_name("gunicorn")), "-b", f"127.0.0.1:{args.port}",
                   "--log-level", "warning", "--pythonpath", instance,
                   *(["-w", str(args.workers)] if args.workers else []),
                   *(["--threads", str(args.threads)] if args.threads else []), f"{module}:app"]
        settings = gunicorn_settings(command)
        print(f"portal: gunicorn {module}:app; {settings}", flush=True)
        expected = args.workers or int(dict(part.split(" ", 1) for part in settings.split(", ")
                                            if " " in part).get("workers", 1))
    else:
        command = [sys.executable, "-c", SERVE.format(module=module), str(args.port), instance]
        print(f"portal: werkzeug threaded dev server, {module}:app", flush=True)
        expected = 0  # one process, no workers
    server = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    meter = CpuMeter(server.pid, database, redis_pid(os.environ["REDIS_URL"]))
    generator = Generator(args.port, args.client_threads, args.timeout, args.client)
    try:
        for _ in range(300):  # the workers boot
            if server.poll() is not None:
                sys.exit(f"the portal's process exited with {server.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        booted = wait_for_workers(server.pid, expected)
        print(f"workers: {booted}", flush=True)
        if warm_total:  # every worker process opens its connections and warms up first
            _, warm = generator.run(accounts[pairs_total:], 4 * interval)
            print(f"warm-up: {warm_total} pairs at {args.rate / 4:.0f} req/s, "
                  f"{sum('wrong' in r for r in warm)} wrong (not counted)", flush=True)
        load_before = os.getloadavg()
        cpu_before = meter.snapshot()
        start, records = generator.run(accounts[:pairs_total], interval)
        cpu_after = meter.snapshot()
        load_after = os.getloadavg()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()

    # -- rates -------------------------------------------------------------------------------------
    answer_times = [t for r in records for t in r.get("answered", ())]
    answered = len(answer_times)  # calls that got an HTTP answer (right or wrong), not transport errors
    right = sum(r.get("right", 0) for r in records)
    last_answer = max(answer_times, default=start)
    # the schedule's own length at least: the last pair is due one interval before its end
    elapsed = max(last_answer - start, pairs_total * interval)
    offered_calls = 2 * pairs_total
    wrong = [r["wrong"] for r in records if "wrong" in r]
    served = answered / elapsed if elapsed > 0 else 0.0
    print(f"\noffered {args.rate:.0f} req/s: {pairs_total} pairs = {offered_calls} calls due over "
          f"{pairs_total * interval:.2f} s (a pair every {interval * 1000:.1f} ms)")
    print(f"served  {served:.1f} req/s: {answered} answers ({right} right) over {elapsed:.2f} s (from the first "
          f"due time to the last answer, {last_answer - start:.2f} s, or the schedule's length if longer)")
    lag = [(r["sent"] - r["due"]) * 1000 for r in records if "sent" in r]
    late_pick = sum(1 for r in records if r.get("late_pick"))
    behind = [x for x in lag if x > 1.0]
    print(f"generator: ensure sent after its due time by p50 {pct(lag, 50):.2f} ms, p99 {pct(lag, 99):.2f} ms, "
          f"max {max(lag or [0]):.2f} ms; {len(behind)} of {len(lag)} more than 1 ms late; "
          f"{late_pick} found no free thread at their due time ({args.client_threads} threads)")
    if late_pick:
        print(f"  the generator fell behind: {late_pick} pairs were due before a thread was free (the portal "
              f"held {args.client_threads} pairs at once); their wait is in their latencies")
    if pct(lag, 99) > 1.0:
        print("  the generator fell behind: its threads woke late (busy CPUs); that lateness is in the latencies")
    if not late_pick and pct(lag, 99) <= 1.0:
        print("  the generator kept to its schedule (p99 of lateness <= 1 ms)")

    # -- latencies ---------------------------------------------------------------------------------
    ensure_ms = [r["ensure_ms"] for r in records if "ensure_ms" in r]
    commit_ms = [r["commit_ms"] for r in records if "commit_ms" in r]
    pair_ms = [r["pair_ms"] for r in records if "pair_ms" in r]
    calls = ensure_ms + commit_ms
    print("latency (ensure from its due time; commit from its ensure's answer; pair from due to commit's answer):")
    for name, values in (("ensure", ensure_ms), ("commit", commit_ms), ("any call", calls), ("pair", pair_ms)):
        print(f"  {name:9s} p50 {pct(values, 50):7.1f} ms  p95 {pct(values, 95):7.1f} ms  "
              f"p99 {pct(values, 99):7.1f} ms  max {max(values or [float('nan')]):7.1f} ms  (n={len(values)})")
    print(f"wrong answers: {len(wrong)}" + (f"; first: {wrong[0]}" if wrong else ""))

    # -- CPU ---------------------------------------------------------------------------------------
    if cpu_before and cpu_after and answered:
        window, busy, roles = CpuMeter.used(cpu_before, cpu_after)
        ours = sum(roles.values())
        cpus = os.cpu_count() or 1
        print(f"CPU per call ({answered} answers, {window:.2f} s, {cpus} CPUs): " + ", ".join(
            f"{name} {used / answered * 1000:.2f} ms" for name, used in roles.items()
            if database or not name.startswith("PostgreSQL"))
            + f"; total {ours / answered * 1000:.2f} ms")
        print(f"  machine busy {busy / window / cpus * 100:.0f}% of {cpus} CPUs: this bench's processes "
              f"{ours / window / cpus * 100:.0f}%, other processes {(busy - ours) / window / cpus * 100:.0f}% "
              f"({(busy - ours) / window:.2f} CPUs); load average {load_before[0]:.2f} -> {load_after[0]:.2f}")

    # -- verdict -----------------------------------------------------------------------------------
    min_served = args.rate * 0.995
    checks = {
        f"p99 ensure <= {args.p99_ms:g} ms": pct(ensure_ms, 99) <= args.p99_ms,
        f"p99 commit <= {args.p99_ms:g} ms": pct(commit_ms, 99) <= args.p99_ms,
        f"served >= {min_served:g} req/s": served >= min_served,
        "every answer right": not wrong and len(commit_ms) == pairs_total,
    }
    print("target: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items()))
    ok = all(checks.values())
    print("target", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
