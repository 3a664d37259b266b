#!/usr/bin/env python
"""In-process cost of one call on the money hot paths: CPU (this process's clock), SQL
statements and database round trips per call, optionally a cProfile, for

    upsale    «Смотрёшка» upsale ensure + commit (bench/upsale.py's accounts)
    provider  the provider protocol's pay (bench/provider.py's agent and blocked contracts:
              the first pay of a contract unblocks it, the second is a plain payment)
    api       the same payments through API v1 (POST /api/v1/payments)

    .venv/bin/python bench/calls_profile.py upsale --database-url postgresql://.../bench_x \
        --redis-url redis://127.0.0.1:6379/N [--n 300] [--log-sql] [--profile 30]

Requests go through Flask's test client (routing, authentication, the call, the commit), not
HTTP: the figures leave out gunicorn and the socket, and do not depend on other processes'
load the way wall-clock latency does (process CPU time is inflated a little by a busy
machine's cache misses, not by its queueing). The open-loop benches measure the whole.
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import os
import pstats
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Statements:
    """Counts what the engine sends: statements (by their first words), commits, pool checkouts
    and pings (a pre-ping is a round trip of its own). Statements run by the driver itself
    (billing.driver_sql) fire the engine's before_cursor_execute too."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.counts: Counter = Counter()
        self.log: list[str] | None = None
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", lambda conn: self.counts.update(["COMMIT"]))
        event.listen(engine.pool, "checkout", lambda *a: self.counts.update(["(checkout)"]))
        dialect = engine.dialect
        original = dialect.do_ping

        def ping(dbapi_connection):
            self.counts.update(["(ping)"])
            return original(dbapi_connection)

        dialect.do_ping = ping
        # statements the hot paths send by the driver itself (db_setup.driver_first) pass no event
        from portal import db_setup

        first = db_setup.driver_first

        def driver_first(sql, params):
            self._statement(None, None, sql, params, None, False)
            return first(sql, params)

        db_setup.driver_first = driver_first
        from portal.platforms import connections

        connections.driver_first = driver_first

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        self.counts.update(["statement"])
        if self.log is not None:
            self.log.append(" ".join(statement.split())[:160])

    def count_redis(self) -> None:
        """Redis round trips: one packed send per command or pipeline (H8)."""
        from redis.connection import AbstractConnection

        original = AbstractConnection.send_packed_command

        def send(conn, command, check_health=True):
            self.counts.update(["(redis)"])
            return original(conn, command, check_health)

        AbstractConnection.send_packed_command = send

    def take(self) -> Counter:
        out, self.counts = self.counts, Counter()
        return out


class BackendCpu:
    """CPU time (user + system, from /proc) of the PostgreSQL backends serving this database:
    the database's side of each call (the server runs on this machine)."""

    def __init__(self, database_url: str | None):
        self.name = urlsplit(database_url).path.lstrip("/") if database_url else None
        self.tick = os.sysconf("SC_CLK_TCK")
        self.pids: list[int] = []

    def find(self) -> None:
        """The backends now connected to the database (the pool's, after the warm-up calls)."""
        self.pids = []
        if not self.name:
            return
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if cmd.startswith("postgres: ") and f" {self.name} " in cmd:
                    self.pids.append(int(entry))

    def seconds(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / self.tick


def _prepare(kind: str, n: int):
    if kind == "upsale":
        import upsale as bench

        return bench.prepare(n, None)
    import provider as bench

    return bench.prepare(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("upsale", "provider", "api"))
    parser.add_argument("--n", type=int, default=300, help="pairs (upsale) or contracts (provider, api)")
    parser.add_argument("--warm", type=int, default=20, help="calls first, not counted")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--log-sql", action="store_true", help="print the statements of one call of each kind")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions by own time")
    parser.add_argument("--profile-label", default=None, help="profile only the calls of this kind (e.g. plain)")
    parser.add_argument("--python-calls", action="store_true",
                        help="count Python function calls per call (deterministic, unlike CPU time; slows the run)")
    args = parser.parse_args()
    if args.database_url:
        if "bench" not in urlsplit(args.database_url).path:
            sys.exit("the database name must contain 'bench' (its schema is dropped and recreated)")
        import openloop

        openloop.ensure_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
        os.environ.setdefault("SECRET_KEY", "bench-secret")
        os.environ.setdefault("CREDENTIALS_KEY", "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=")
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    os.environ.setdefault("PORTAL_INSTANCE", "/tmp/bench-calls-profile")
    Path(os.environ["PORTAL_INSTANCE"]).mkdir(exist_ok=True)
    data = _prepare(args.kind, args.n + args.warm)

    from portal import create_app
    from portal.extensions import db

    app = create_app()
    client = app.test_client()
    with app.app_context():
        stats = Statements(db.engine)
    stats.count_redis()
    calls = _calls(args.kind, data, args.n + args.warm)
    gc.collect()  # as gunicorn.conf.py's post_worker_init does in a worker
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    cpu: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, Counter] = defaultdict(Counter)
    logged: set[str] = set()
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    counters: dict[str, cProfile.Profile] = {}
    backends = BackendCpu(args.database_url)
    db_cpu: dict[str, float] = defaultdict(float)
    for i, (label, send, check) in enumerate(calls):
        measured = i >= args.warm
        if i == args.warm:
            backends.find()
        db_before = backends.seconds() if measured else 0.0
        if measured and args.log_sql and label not in logged:
            stats.log = []
        profiled = measured and profiler and args.profile_label in (None, label)
        if profiled:
            profiler.enable()
        counter = counters.setdefault(label, cProfile.Profile()) if measured and args.python_calls else None
        if counter:
            counter.enable()
        t = time.process_time()
        result = send(client)
        used = time.process_time() - t
        if counter:
            counter.disable()
        if profiled:
            profiler.disable()
        if not check(result):
            print(f"wrong answer for {label}: {result}")
            return 1
        got = stats.take()
        if measured:
            db_cpu[label] += backends.seconds() - db_before
            cpu[label].append(used)
            counts[label] += got
            if stats.log is not None:
                print(f"-- {label}: {len(stats.log)} statements")
                for line in stats.log:
                    print("   ", line)
                logged.add(label)
                stats.log = None
    print(f"{args.kind}, {'PostgreSQL' if args.database_url else 'SQLite'}, load average "
          f"{os.getloadavg()[0]:.2f}; per call (process CPU, statements and round trips to the database and Redis):")
    for label, values in cpu.items():
        n = len(values)
        values.sort()
        per = {k: v / n for k, v in counts[label].items()}
        print(f"  {label:12s} n={n:4d}  CPU mean {sum(values) / n * 1000:6.2f} ms"
              f"  median {values[n // 2] * 1000:6.2f} ms"
              f"  statements {per.get('statement', 0):5.2f}  commits {per.get('COMMIT', 0):4.2f}"
              f"  checkouts {per.get('(checkout)', 0):4.2f}  pings {per.get('(ping)', 0):4.2f}"
              f"  Redis {per.get('(redis)', 0):4.2f}"
              + (f"  PostgreSQL CPU {db_cpu[label] / n * 1000:5.2f} ms" if backends.pids else "")
              + (f"  Python calls {sum(e.callcount for e in counters[label].getstats()) / n:7.0f}"
                 if label in counters else ""))
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile * 2)
        if os.environ.get("PROFILE_DUMP"):
            profiler.dump_stats(os.environ["PROFILE_DUMP"])
    return 0


def _calls(kind: str, data, n: int):
    """(label, send(client) -> result, check(result) -> bool) for each call, in order."""
    out = []
    if kind == "upsale":
        import upsale as bench

        auth = {"Authorization": "Basic " + base64.b64encode(f"{bench.LOGIN}:{bench.PASSWORD}".encode()).decode()}
        state: dict = {}
        for k, (login, pid) in enumerate(data[:n]):
            q = {"accountId": pid, "accountLogin": login, "newOfferId": "201",
                 "qsTransactionId": f"qs-{k}-{uuid.uuid4()}"}

            def ensure(client, q=q):
                r = client.post(f"{bench.BASE}/ensure", query_string=q, json={"clientIp": "10.0.0.1"}, headers=auth)
                state["bid"] = r.get_json().get("billingTransactionId")
                return r.get_json()

            def commit(client, q=q):
                r = client.post(f"{bench.BASE}/commit", query_string={**q, "billingTransactionId": state["bid"]},
                                headers=auth)
                return r.get_json()

            out.append(("ensure", ensure, lambda r: r.get("result") == "operation_ensured"))
            out.append(("commit", commit, lambda r: r.get("result") == "operation_commited"))
        return out
    import provider as bench

    contracts, token = data
    contracts = contracts[:n]
    when = time.strftime("%Y%m%d%H%M%S")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{bench.SLUG}:{bench.SECRET}".encode()).decode()}
    tag = uuid.uuid4().hex[:6]
    for n_, label, amount in ((1, "unblocking", bench.FIRST), (2, "plain", bench.SECOND)):
        for i, (cid, number) in enumerate(contracts):
            if kind == "provider":
                q = {"command": "pay", "txn_id": f"{tag}{n_}-{i}", "txn_date": when, "account": number, "sum": amount}
                out.append((label, lambda client, q=q: client.get(f"/pay/provider/{bench.SLUG}", query_string=q,
                                                                   headers=auth).data,
                            lambda r: b"<result>0</result>" in r))
            else:
                body = {"contract_id": cid, "amount": amount, "external_id": f"{tag}{n_}-{i}"}
                out.append((label, lambda client, body=body: client.post(
                    "/api/v1/payments", json=body, headers={"Authorization": f"Bearer {token}"}).status_code,
                    lambda r: r == 201))
    return out


if __name__ == "__main__":
    sys.exit(main())
