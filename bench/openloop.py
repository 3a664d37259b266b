"""The open-loop machinery the HTTP benches share (bench/upsale.py, bench/provider.py; see
bench/README.md): the database and Redis to run on, the portal as production serves it, a
schedule of calls each timed from when it was due, and the report (offered and served rate,
latency per kind of call, CPU per call of the portal, PostgreSQL, Redis and the load generator
from /proc).

Open loop, no coordinated omission: call k is *due* at start + k × interval whether or not
earlier calls have answered, and is timed from its due time, so a call that had to wait (for a
free load-generator thread, or because the generator itself woke late) counts that wait.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- the database and Redis -------------------------------------------------------------------------

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


def settle(db) -> None:
    """On PostgreSQL: statistics and a clean slate for the tables just filled, as a live database
    has (otherwise autovacuum and a checkpoint start on them in the middle of the run)."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")


def environment(prefix: str, database_url: str | None, redis_url: str | None) -> tuple[str, str | None]:
    """The process environment the portal and the preparation read: a temporary instance
    directory, the database (a PostgreSQL one whose name must contain "bench": it is created if
    missing, and its schema dropped) and Redis. Returns (instance directory, database name)."""
    instance = tempfile.mkdtemp(prefix=prefix)
    os.environ["PORTAL_INSTANCE"] = instance
    database = None
    if database_url:
        database = urlsplit(database_url).path.lstrip("/")
        if "bench" not in database:
            sys.exit("the database name must contain 'bench' (its schema is dropped and recreated)")
        ensure_database(database_url)
        os.environ["DATABASE_URL"] = database_url
        os.environ.setdefault("SECRET_KEY", "bench-secret")
        from cryptography.fernet import Fernet

        os.environ.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    return instance, database


def embedded_redis() -> None:
    """Without REDIS_URL: the embedded Redis's URL, for the portal's processes (and the outbox)."""
    if not os.environ.get("REDIS_URL"):
        from portal import create_app
        from portal.queue import redis_url_for_children

        with create_app().app_context():
            os.environ["REDIS_URL"] = redis_url_for_children()


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


def redis_pid(url: str) -> int | None:
    try:
        import redis

        info = redis.Redis.from_url(url, socket_timeout=5).info("server")
        host = urlsplit(url).hostname
        return int(info["process_id"]) if url.startswith("unix") or host in ("127.0.0.1", "localhost", "::1") \
            else None
    except Exception:  # noqa: BLE001 - a report line, not a reason to stop
        return None


# -- the portal's process -----------------------------------------------------------------------------

SERVE = """
import logging, sys
from werkzeug.serving import run_simple
sys.path.insert(0, sys.argv[2])
from {module} import app
logging.getLogger("werkzeug").setLevel(logging.ERROR)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True, use_reloader=False)
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


class Portal:
    """The portal as a separate process: gunicorn with the repository's gunicorn.conf.py (read
    from ROOT; ``workers``/``threads`` override it), or werkzeug's threaded dev server. Prints
    the settings in effect; ``start`` returns once every worker has booted."""

    def __init__(self, port: int, server: str = "gunicorn", module: str = "wsgi", pythonpath: str | None = None,
                 workers: int | None = None, threads: int | None = None):
        self.port = port
        if server == "gunicorn":
            self.command = [str(Path(sys.executable).with_name("gunicorn")), "-b", f"127.0.0.1:{port}",
                            "--log-level", "warning", *(["--pythonpath", pythonpath] if pythonpath else []),
                            *(["-w", str(workers)] if workers else []),
                            *(["--threads", str(threads)] if threads else []), f"{module}:app"]
            settings = gunicorn_settings(self.command)
            print(f"portal: gunicorn {module}:app; {settings}", flush=True)
            self.expected = workers or int(dict(part.split(" ", 1) for part in settings.split(", ")
                                                if " " in part).get("workers", 1))
        else:
            self.command = [sys.executable, "-c", SERVE.format(module=module), str(port), pythonpath or str(ROOT)]
            print(f"portal: werkzeug threaded dev server, {module}:app", flush=True)
            self.expected = 0  # one process, no workers
        self.process = None

    def start(self) -> Portal:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=os.environ.copy())
        for _ in range(300):  # the first worker answers
            if self.process.poll() is not None:
                sys.exit(f"the portal's process exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        print(f"workers: {wait_for_workers(self.process.pid, self.expected)}", flush=True)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- CPU accounting (Linux /proc) ---------------------------------------------------------------------

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


# -- the schedule -----------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))]


def run(items: list, interval: float, threads: int, send, lead: float = 0.2) -> tuple[float, list[dict]]:
    """Open loop: item k is due at start + k × interval; ``threads`` threads take the next item,
    sleep until it is due and call ``send(item, due, record)``, which times its calls from
    ``due`` into ``record["ms"][kind]``, appends each answer's time to ``record["answered"]``
    and sets ``record["wrong"]`` for a wrong answer. Returns (start, records); a record also
    holds its due time, when it was sent, and whether it found no free thread (``late_pick``)."""
    records = [{"due": 0.0, "ms": {}, "answered": []} for _ in items]
    lock, nxt = threading.Lock(), [0]
    start = time.monotonic() + lead  # the threads are up before the first item is due

    def worker() -> None:
        while True:
            with lock:
                k = nxt[0]
                if k >= len(items):
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
                send(items[k], due, rec)
            except Exception as e:  # noqa: BLE001 - a broken answer is a wrong one, the thread goes on
                rec["wrong"] = ("error", repr(e))

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(min(threads, len(items)))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return start, records


# -- the report -------------------------------------------------------------------------------------

def report(rate: float, interval: float, calls_due: int, start: float, records: list[dict], kinds: list[str],
           threads: int, pooled: list[str] | None = None) -> tuple[float, dict[str, float], list]:
    """Print offered and served rate, how late the generator was, and p50/p95/p99/max per kind
    of call (``kinds``: keys of ``record["ms"]``; "any call" pools the ``pooled`` ones, default
    all). Returns (served rate, p99 per kind, wrong answers)."""
    answer_times = [t for r in records for t in r["answered"]]
    wrong = [r["wrong"] for r in records if "wrong" in r]
    last_answer = max(answer_times, default=start)
    # the schedule's own length at least: the last item is due one interval before its end
    elapsed = max(last_answer - start, len(records) * interval)
    served = len(answer_times) / elapsed if elapsed > 0 else 0.0
    print(f"offered {rate:.0f} req/s: {calls_due} calls due over {len(records) * interval:.2f} s")
    print(f"served  {served:.1f} req/s: {len(answer_times)} answers ({len(answer_times) - len(wrong)} right) over "
          f"{elapsed:.2f} s (from the first due time to the last answer, or the schedule's length if longer)")
    lag = [(r["sent"] - r["due"]) * 1000 for r in records if "sent" in r]
    late_pick = sum(1 for r in records if r.get("late_pick"))
    print(f"generator: sent after the due time by p50 {pct(lag, 50):.2f} ms, p99 {pct(lag, 99):.2f} ms, "
          f"max {max(lag or [0]):.2f} ms; {late_pick} found no free thread at their due time ({threads} threads)"
          + ("; the generator kept to its schedule" if not late_pick and pct(lag, 99) <= 1.0 else
             "; that wait is in the latencies"))
    p99 = {}
    series = [(kind, [r["ms"][kind] for r in records if kind in r["ms"]]) for kind in kinds]
    if len(kinds) > 1:
        series.append(("any call", [v for k, values in series if k in (pooled or kinds) for v in values]))
    print("latency from the due time:")
    for kind, values in series:
        p99[kind] = pct(values, 99)
        print(f"  {kind:12s} p50 {pct(values, 50):7.1f} ms  p95 {pct(values, 95):7.1f} ms  "
              f"p99 {p99[kind]:7.1f} ms  max {max(values or [float('nan')]):7.1f} ms  (n={len(values)})")
    print(f"wrong answers: {len(wrong)}" + (f"; first: {wrong[0]}" if wrong else ""))
    return served, p99, wrong


def speed_reference() -> float:
    """CPU ms of a fixed pure-Python loop, timed now: the machine's speed beside a run's figures.
    A VM's speed drifts (the same bench's CPU per call moved by a third within an hour on
    2026-12-04, with nothing else running): runs compare only with this figure beside them."""
    started, total = time.process_time(), 0
    for i in range(300_000):
        total += i * i % 7
    return (time.process_time() - started) * 1000


def report_cpu(before, after, calls: int, database: str | None, load_before, load_after,
               what: str = "calls") -> None:
    """CPU per call of each role between two CpuMeter snapshots, and the rest of the machine."""
    if not (before and after and calls):
        return
    window, busy, roles = CpuMeter.used(before, after)
    ours, cpus = sum(roles.values()), os.cpu_count() or 1
    print(f"CPU per call ({calls} {what}, {window:.2f} s, {cpus} CPUs): " + ", ".join(
        f"{role} {used / calls * 1000:.2f} ms" for role, used in roles.items()
        if database or not role.startswith("PostgreSQL")) + f"; total {ours / calls * 1000:.2f} ms")
    print(f"  machine busy {busy / window / cpus * 100:.0f}% of {cpus} CPUs: this bench's processes "
          f"{ours / window / cpus * 100:.0f}%, other processes {(busy - ours) / window / cpus * 100:.0f}% "
          f"({(busy - ours) / window:.2f} CPUs); load average {load_before[0]:.2f} -> {load_after[0]:.2f}; "
          f"speed reference after the run {speed_reference():.1f} ms (openloop.speed_reference: higher = slower)")
