#!/usr/bin/env python
"""Benchmark of the charge run on PostgreSQL (see bench/README.md).

    .venv/bin/python bench/charge_run.py [--n N] [--database-url URL] [--date YYYY-MM-DD]

Builds N active monthly services on N contracts with set-based SQL straight into the tables of
``db.create_all()``, copies that database twice (``CREATE DATABASE ... TEMPLATE``) so that every
contender starts from the same bytes, and times:

1. ours:   ``portal.billing.charging.charge(date)`` + commit, in an app context;
2. floor:  the hand-written minimal SQL that leaves the same ledger rows and balances
           (one INSERT ... SELECT into ledger_entries, one set-based UPDATE of contracts);
3. loop:   a per-row ORM loop over a sample (default 20,000 rows), scaled up to N;
4. second: ``charge(date)`` again for the same day, which must post nothing.

Every contract's credit limit is above its price, so the balance rule that ``charge()`` applies
at the end blocks nobody (the floor has no such rule; the cost of its scan is still counted).
The script checks that ours and the floor leave identical ledger rows and balances, and that the
second run changes nothing.

VACUUM ANALYZE and a CHECKPOINT precede every timing. Ours and the loop run in fresh Python
processes of their own (``--worker``, one app per process). The database named by
--database-url (default ``bench``) and its siblings ``<name>_floor``, ``<name>_loop`` (and
``<name>_explain`` with --explain) are dropped and recreated; the name must contain "bench", so
the script can never drop the test database. Session settings for every contender can be given
with the usual libpq variable, e.g. ``PGOPTIONS='-c work_mem=64MB'``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import event, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import joinedload  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench"
# (name, price in kopecks): monthly in advance, per month
SERVICES = [("Bench internet 100", 45000), ("Bench internet 500", 69900), ("Bench IPTV", 29900)]
TARGETS = {"ours/floor": ("<=", 1.5), "loop/ours": (">=", 20.0), "second/first": ("<=", 0.20)}


def log(msg: str) -> None:
    """A timestamped line with the load average: other work on the machine skews the timings."""
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{datetime.now():%H:%M:%S} load {load}] {msg}", flush=True)


# --------------------------------------------------------------------------- databases

def libpq_url(url: str, dbname: str | None = None) -> str:
    """A plain postgresql:// URL (for psycopg) of ``url``, optionally for another database."""
    u = make_url(url).set(drivername="postgresql")
    if dbname is not None:
        u = u.set(database=dbname)
    return u.render_as_string(hide_password=False)


def connect(url: str, dbname: str | None = None, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(libpq_url(url, dbname), autocommit=autocommit)


def recreate_db(url: str, name: str, template: str | None = None) -> None:
    with connect(url, "postgres") as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        else:
            c.execute(f'CREATE DATABASE "{name}"')


def drop_db(url: str, name: str) -> None:
    with connect(url, "postgres") as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_timing(url: str, dbname: str) -> None:
    """Same starting conditions for every timing: fresh statistics, visibility map, no pending
    dirty buffers from earlier work."""
    with connect(url, dbname) as c:
        c.execute("VACUUM ANALYZE")
        c.execute("CHECKPOINT")


def make_app(url: str):
    """The app on ``url``. One per process: each contender runs in its own Python process
    (``--worker``), which also keeps their memory and caches apart."""
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url})


# --------------------------------------------------------------------------- data

def generate(url: str, n: int, run_date: date) -> None:
    """Schema by db.create_all(), rows by generate_series (set-based, no Python loop)."""
    from portal.extensions import db

    app = make_app(url)
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    before = run_date.replace(day=1) - timedelta(days=40)  # starts and status changes: before the month
    credit = max(p for _, p in SERVICES) * 2  # a credit limit above any price: nobody gets blocked
    k = len(SERVICES)
    with connect(url, autocommit=False) as c:
        c.execute("SET synchronous_commit = off")
        c.execute("INSERT INTO agents (id, name, kind, platform) VALUES (1, 'bench', 'services', NULL)")
        for i, (name, price) in enumerate(SERVICES, start=1):
            c.execute("INSERT INTO catalog_services (id, name, price, charge_period, charge_mode) "
                      "VALUES (%s, %s, %s, 'month', 'monthly_advance')", (i, name, price))
        c.execute("INSERT INTO tariffs (id, name, kind, monthly_fee, is_multi, fee_service_id) "
                  "VALUES (1, 'Bench', 'internet', %s, false, 1)", (SERVICES[0][1],))
        steps = [
            ("subscribers", "INSERT INTO subscribers (id, kind, full_name, phones, email, created_at) "
             "SELECT g, 'person', 'Bench subscriber ' || g, '[]'::json, 'b' || g || '@bench.invalid', now() "
             "FROM generate_series(1, %(n)s) g"),
            ("contracts", "INSERT INTO contracts (id, number, subscriber_id, credit_limit, do_not_block, balance, "
             "created_at) SELECT g, 'B-' || g, g, %(credit)s, false, 0, now() FROM generate_series(1, %(n)s) g"),
            ("accounts", "INSERT INTO accounts (id, contract_id, login, agent_id, tariff_id, status, block_reasons, "
             "status_changed_on, created_at) SELECT g, g, 'bench' || g, 1, 1, 'active', 0, %(before)s, now() "
             "FROM generate_series(1, %(n)s) g"),
            ("assigned_services", "INSERT INTO assigned_services (id, account_id, service_id, starts_on, ends_on, "
             "state, state_changed_on, created_at) SELECT g, g, 1 + (g %% %(k)s), %(before)s, NULL, 'active', "
             "%(before)s, now() FROM generate_series(1, %(n)s) g"),
        ]
        for table, sql in steps:
            t0 = time.perf_counter()
            c.execute(sql, {"n": n, "credit": credit, "before": before, "k": k})
            log(f"  {table}: {n} rows in {time.perf_counter() - t0:.1f} s")
        for table in ("agents", "catalog_services", "tariffs", "subscribers", "contracts", "accounts",
                      "assigned_services"):
            c.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        c.commit()
    with connect(url) as c:
        c.execute("VACUUM (FREEZE, ANALYZE)")
        c.execute("CHECKPOINT")


def expected(url: str, dbname: str) -> dict:
    with connect(url, dbname) as c:
        n, total = c.execute("SELECT count(*), coalesce(sum(cs.price), 0) FROM assigned_services s "
                             "JOIN catalog_services cs ON cs.id = s.service_id").fetchone()
    return {"n": n, "total": int(total)}


def fingerprint(url: str, dbname: str) -> dict:
    """What a charge leaves behind: counts, sums and digests of the ledger and the balances."""
    with connect(url, dbname) as c:
        cnt, lsum = c.execute("SELECT count(*), coalesce(sum(amount), 0) FROM ledger_entries").fetchone()
        bsum, = c.execute("SELECT coalesce(sum(balance), 0) FROM contracts").fetchone()
        wrong, = c.execute(
            "SELECT count(*) FROM contracts co JOIN accounts a ON a.contract_id = co.id "
            "JOIN assigned_services s ON s.account_id = a.id JOIN catalog_services cs ON cs.id = s.service_id "
            "WHERE co.balance <> -cs.price").fetchone()
        ledger_md5, = c.execute(
            "SELECT md5(coalesce(string_agg(concat_ws(',', contract_id, kind, amount, assigned_service_id, "
            "period_start), ';' ORDER BY assigned_service_id, id), '')) FROM ledger_entries").fetchone()
        balance_md5, = c.execute(
            "SELECT md5(coalesce(string_agg(id || ':' || balance, ';' ORDER BY id), '')) FROM contracts").fetchone()
    return {"entries": cnt, "ledger_sum": int(lsum), "balance_sum": int(bsum), "wrong_balances": wrong,
            "ledger_md5": ledger_md5, "balance_md5": balance_md5}


def check_charged(fp: dict, exp: dict, who: str) -> None:
    problems = []
    if fp["entries"] != exp["n"]:
        problems.append(f"{fp['entries']} ledger rows, expected {exp['n']}")
    if fp["wrong_balances"]:
        problems.append(f"{fp['wrong_balances']} balances differ from -price")
    if fp["ledger_sum"] != fp["balance_sum"]:
        problems.append(f"ledger sum {fp['ledger_sum']} != balance sum {fp['balance_sum']}")
    if fp["ledger_sum"] != -exp["total"]:
        problems.append(f"ledger sum {fp['ledger_sum']} != -sum(prices) {-exp['total']}")
    if problems:
        raise SystemExit(f"{who}: " + "; ".join(problems))


# --------------------------------------------------------------------------- contenders

# The floor: the least SQL that leaves the same ledger rows and balances as a first charge run of
# a whole month (no charge_periods, no idempotency, no rules). Both statements go in contract
# order: at 1M rows with a default shared_buffers (128MB) an UPDATE in hash order touches heap and
# index pages at random and was about twice as slow (52 s against 12-17 s for the UPDATE here), and
# a floor must be the best plain SQL, not a strawman.

# The floor's run record: ledger_entries.charge_run_id is a foreign key, so its rows name a real run
# and pay the same key checks as ours.
FLOOR_RUN = """
INSERT INTO charge_runs (run_date, scope, started_at, entries, charged, refunded, blocked)
VALUES (%(d)s, 'floor', now(), 0, 0, 0, 0) RETURNING id
"""
FLOOR_INSERT = """
INSERT INTO ledger_entries (contract_id, kind, amount, created_at, author, assigned_service_id, period_start,
                            charge_run_id)
SELECT a.contract_id, 'charge', -cs.price, now(), 'system', s.id, %(ps)s, %(run)s
FROM assigned_services s
JOIN accounts a ON a.id = s.account_id
JOIN catalog_services cs ON cs.id = s.service_id
WHERE a.status = 'active' AND s.state = 'active' AND s.starts_on <= %(d)s
  AND (s.ends_on IS NULL OR s.ends_on >= %(d)s)
ORDER BY a.contract_id, s.id
"""
FLOOR_UPDATE = """
UPDATE contracts co SET balance = co.balance + t.total
FROM (SELECT a.contract_id, -sum(cs.price) AS total
      FROM assigned_services s
      JOIN accounts a ON a.id = s.account_id
      JOIN catalog_services cs ON cs.id = s.service_id
      WHERE a.status = 'active' AND s.state = 'active' AND s.starts_on <= %(d)s
        AND (s.ends_on IS NULL OR s.ends_on >= %(d)s)
      GROUP BY a.contract_id
      ORDER BY a.contract_id) t
WHERE co.id = t.contract_id
"""


def run_floor(url: str, dbname: str, run_date: date) -> float:
    """The minimal SQL for a full-month charge of every billable service (no idempotency)."""
    params = {"d": run_date, "ps": run_date.replace(day=1)}
    with connect(url, dbname, autocommit=False) as c:
        t0 = time.perf_counter()
        params["run"] = c.execute(FLOOR_RUN, params).fetchone()[0]
        c.execute(FLOOR_INSERT, params)
        c.execute(FLOOR_UPDATE, params)
        c.commit()
        return time.perf_counter() - t0


class StatementTimer:
    """Per-statement wall time of an engine (the breakdown of our run)."""

    def __init__(self, engine):
        self.rows: list[tuple[float, str, dict | tuple | None]] = []
        self._t: list[float] = []
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._t.append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.rows.append((time.perf_counter() - self._t.pop(), statement, parameters))

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def report(self, total: float, top: int = 6) -> list[str]:
        lines = []
        for dt, stmt, _ in sorted(self.rows, key=lambda r: -r[0])[:top]:
            lines.append(f"    {dt:8.3f} s  {short_sql(stmt)}")
        rest = total - sum(r[0] for r in self.rows)
        lines.append(f"    {rest:8.3f} s  (outside SQL statements: Python, commit)")
        return lines


def short_sql(stmt: str, width: int = 110) -> str:
    s = re.sub(r"\s+", " ", stmt).strip()
    return s if len(s) <= width else s[:width - 3] + "..."


def run_ours(app, run_date: date) -> tuple[float, object, StatementTimer]:
    from portal.billing.charging import charge
    from portal.extensions import db

    with app.app_context():
        timer = StatementTimer(db.engine)
        try:
            t0 = time.perf_counter()
            run = charge(run_date)
            db.session.commit()
            dt = time.perf_counter() - t0
        finally:
            timer.close()
        info = {"entries": run.entries, "charged": run.charged, "refunded": run.refunded, "blocked": run.blocked}
        db.session.remove()
    return dt, info, timer


def run_loop(app, run_date: date, sample: int) -> tuple[float, int]:
    """The per-row ORM way: load each assigned service with its account, contract and catalog
    service (one SELECT with joined eager loads per row), work the amount out in Python, add a
    LedgerEntry and lower the cached balance; flush every 1,000 rows, commit at the end."""
    import calendar

    from portal.extensions import db
    from portal.models import Account, AssignedService, LedgerEntry

    cent = Decimal("0.01")
    ps = run_date.replace(day=1)
    dim = calendar.monthrange(run_date.year, run_date.month)[1]
    opts = [joinedload(AssignedService.account).joinedload(Account.contract), joinedload(AssignedService.service)]
    with app.app_context():
        ids = db.session.scalars(select(AssignedService.id).order_by(AssignedService.id).limit(sample)).all()
        db.session.commit()
        posted = 0
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        for i, sid in enumerate(ids, start=1):
            # No autoflush per row: the unit of work batches the INSERTs and UPDATEs of 1,000 rows
            # at a time (a loop that flushes on every query is another ~2x slower).
            with db.session.no_autoflush:
                s = db.session.get(AssignedService, sid, options=opts)
            a = s.account
            if not (a.status == "active" and s.state == "active" and s.starts_on <= run_date
                    and (s.ends_on is None or s.ends_on >= run_date)):
                continue
            since = max(1, *(x.day if x and x > ps else 1 for x in (s.starts_on, a.status_changed_on,
                                                                      s.state_changed_on)))
            days = dim - since + 1
            amount = (s.service.price * days / dim).quantize(cent, rounding=ROUND_HALF_UP)
            db.session.add(LedgerEntry(contract_id=a.contract_id, kind="charge", amount=-amount, created_at=now,
                                       author="system", assigned_service_id=s.id, period_start=ps))
            a.contract.balance = a.contract.balance - amount
            posted += 1
            if i % 1000 == 0:
                db.session.flush()
        db.session.commit()
        dt = time.perf_counter() - t0
        db.session.remove()
    return dt, posted


# --------------------------------------------------------------------------- explain

def capture_ours_sql(app, run_date: date) -> list[tuple[str, dict]]:
    """The statements of a charge run (SQL + parameters), without committing anything."""
    from portal.billing.charging import charge
    from portal.extensions import db

    with app.app_context():
        timer = StatementTimer(db.engine)
        try:
            charge(run_date)
        finally:
            timer.close()
            db.session.rollback()
            db.session.remove()
    return [(stmt, params) for _, stmt, params in timer.rows]


def explain(url: str, dbname: str, statements: list[tuple[str, object]], title: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each data statement, each on a clean slate (rolled back,
    VACUUM ANALYZE, CHECKPOINT); SET / RESET statements in the list are replayed before the
    statements that follow them, as in the run."""
    print(f"\n=== EXPLAIN (ANALYZE, BUFFERS): {title}")
    settings: dict[str, str] = {}
    for stmt, params in statements:
        head = stmt.lstrip().upper()
        if head.startswith("SET "):
            name = re.sub(r"^SET\s+(LOCAL\s+|SESSION\s+)?", "", stmt.strip(), flags=re.I).split()[0]
            settings[name.lower()] = stmt
            continue
        if head.startswith("RESET "):
            settings.pop(stmt.split()[1].lower(), None)
            continue
        prepare_timing(url, dbname)
        with connect(url, dbname, autocommit=False) as c:
            c.execute("SET LOCAL track_io_timing = on")
            for setting in settings.values():
                c.execute(setting)
            plan = c.execute("EXPLAIN (ANALYZE, BUFFERS) " + stmt, params).fetchall()
            c.rollback()
        print("\n--- " + short_sql(stmt, 200))
        if settings:
            print("    with: " + "; ".join(settings.values()))
        for (line,) in plan:  # the expressions of a filter can run to 100,000+ characters: cut them
            print("   " + (line if len(line) <= 300 else line[:300] + f"... ({len(line):,} characters)"))


# --------------------------------------------------------------------------- workers

def worker(kind: str, url: str, run_date: date, n: int, sample: int) -> dict:
    """One contender in this process (the app factory builds one app per process)."""
    from portal.extensions import db

    dbname = make_url(url).database
    app = make_app(url)
    if kind == "ours":
        prepare_timing(url, dbname)
        log("ours: charge(date) + commit")
        t1, info1, timer1 = run_ours(app, run_date)
        log(f"ours: {t1:.2f} s {info1}")
        for line in timer1.report(t1):
            print(line, flush=True)
        prepare_timing(url, dbname)
        log("second: charge(date) + commit for the same day again")
        t2, info2, timer2 = run_ours(app, run_date)
        log(f"second: {t2:.2f} s {info2}")
        for line in timer2.report(t2):
            print(line, flush=True)
        return {"t_first": t1, "entries_first": info1["entries"], "blocked_first": info1["blocked"],
                "t_second": t2, "entries_second": info2["entries"]}
    if kind == "loop":
        prepare_timing(url, dbname)
        log(f"loop: per-row ORM over {sample:,} services")
        t, posted = run_loop(app, run_date, sample)
        return {"t_sample": t, "posted": posted}
    if kind == "explain":
        stmts = capture_ours_sql(app, run_date)
        with app.app_context():
            db.engine.dispose()
        with connect(url) as c:  # capture_ours_sql rolled back: nothing may be left
            assert c.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == 0
        params = {"d": run_date, "ps": run_date.replace(day=1)}
        # (a throwaway copy: the run records stay) the rolled-back run's id, which the captured
        # statements name (a foreign key), and the floor's run
        run_ids = {p["run_id"] for _st, p in stmts if isinstance(p, dict) and p.get("run_id") is not None}
        with connect(url) as c:
            for run_id in run_ids:
                c.execute("INSERT INTO charge_runs (id, run_date, scope, started_at, entries, charged, refunded, "
                          "blocked) VALUES (%s, %s, 'explain', now(), 0, 0, 0, 0)", (run_id, run_date))
            params["run"] = c.execute(FLOOR_RUN, params).fetchone()[0]
        explain(url, dbname, [(FLOOR_INSERT, params), (FLOOR_UPDATE, params)], "floor")
        explain(url, dbname, [(st, pa) for st, pa in stmts
                              if len(st) > 400 or st.lstrip().upper().startswith(("SET ", "RESET "))],
                "ours (the statements longer than 400 characters, with the settings it makes)")
        return {}
    raise SystemExit(f"unknown worker {kind!r}")


def run_worker(kind: str, url: str, args) -> dict:
    """Run a worker in a fresh Python process, pass its output through, return its RESULT."""
    import json
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--database-url", url,
           "--date", args.date.isoformat(), "--n", str(args.n), "--sample", str(args.sample)]
    result = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            else:
                print(line, end="", flush=True)
    if proc.returncode or result is None:
        raise SystemExit(f"worker {kind} failed (exit code {proc.returncode})")
    return result


# --------------------------------------------------------------------------- main


def bench_database(text: str, doing: str) -> str:
    """The benchmark's PostgreSQL URL, refused unless its name says it is a bench database;
    sets the app secrets a benchmark may use."""
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("CREDENTIALS_KEY", "YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMDA=")
    url = make_url(text)
    if not url.drivername.startswith("postgresql"):
        raise SystemExit("this benchmark needs PostgreSQL")
    if "bench" not in (url.database or ""):
        raise SystemExit(f"refusing to {doing} database {url.database!r}: its name must contain 'bench'")
    return url.render_as_string(hide_password=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="services (= contracts = accounts); default 1,000,000")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
                   help=f"dedicated database, dropped and recreated (default {DEFAULT_URL})")
    p.add_argument("--date", type=date.fromisoformat, default=date(2025, 3, 1),
                   help="the charge date (default 2025-03-01: a whole month, full price)")
    p.add_argument("--sample", type=int, default=20_000, help="rows of the per-row ORM loop (default 20,000)")
    p.add_argument("--explain", action="store_true",
                   help="also print EXPLAIN (ANALYZE, BUFFERS) of the floor's and our statements (on a 4th copy)")
    p.add_argument("--keep", action="store_true", help="keep the copies (<name>_floor, _loop, _explain)")
    p.add_argument("--worker", choices=["ours", "loop", "explain"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    url = bench_database(args.database_url, "drop and recreate")
    name = make_url(url).database
    n, run_date = args.n, args.date
    sample = args.sample = min(args.sample, n)

    if args.worker:
        import json

        result = worker(args.worker, url, run_date, n, sample)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    floor_db, loop_db, explain_db = f"{name}_floor", f"{name}_loop", f"{name}_explain"
    with connect(url, "postgres") as c:
        server = c.execute("SHOW server_version").fetchone()[0].split()[0]
        settings = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in (
            "shared_buffers", "work_mem", "max_wal_size", "jit", "max_parallel_workers_per_gather",
            "synchronous_commit")}
    log(f"PostgreSQL {server} {settings}; {os.cpu_count()} CPUs; N={n:,}; date {run_date}; loop sample {sample:,}")
    if os.environ.get("PGOPTIONS"):
        log(f"PGOPTIONS={os.environ['PGOPTIONS']} (applies to every contender)")

    log(f"generating {n:,} services in database {name}")
    t0 = time.perf_counter()
    recreate_db(url, name)
    generate(url, n, run_date)
    exp = expected(url, name)
    log(f"generated in {time.perf_counter() - t0:.1f} s; copying it to {floor_db} and {loop_db}")
    recreate_db(url, floor_db, template=name)
    recreate_db(url, loop_db, template=name)
    if args.explain:
        recreate_db(url, explain_db, template=name)

    # (2) the floor, on its copy
    prepare_timing(url, floor_db)
    log("floor: INSERT ... SELECT + UPDATE + commit")
    t_floor = run_floor(url, floor_db, run_date)
    log(f"floor: {t_floor:.2f} s")
    fp_floor = fingerprint(url, floor_db)
    check_charged(fp_floor, exp, "floor")

    # (1) ours and (4) the same day again, on the original
    r = run_worker("ours", url, args)
    t_ours, t_second = r["t_first"], r["t_second"]
    if r["entries_first"] != n:
        raise SystemExit(f"ours posted {r['entries_first']} entries, expected {n}")
    if r["entries_second"] != 0:
        raise SystemExit(f"the second run posted {r['entries_second']} entries, expected 0")
    fp_ours = fingerprint(url, name)  # after both runs: the second one changed nothing
    check_charged(fp_ours, exp, "ours")
    diff = {k: (fp_ours[k], fp_floor[k]) for k in fp_ours if fp_ours[k] != fp_floor[k]}
    if diff:
        raise SystemExit(f"ours and the floor left different ledgers or balances: {diff}")
    log("ours (after both runs) and the floor left the same ledger rows and balances")

    # (3) the per-row ORM loop, on its copy
    r = run_worker("loop", libpq_url(url, loop_db), args)
    t_loop_sample = r["t_sample"]
    if r["posted"] != sample:
        raise SystemExit(f"the loop posted {r['posted']} of {sample}")
    with connect(url, loop_db) as c:
        lsum, bsum = c.execute("SELECT (SELECT sum(amount) FROM ledger_entries), "
                               "(SELECT sum(balance) FROM contracts)").fetchone()
        want, = c.execute("SELECT -sum(cs.price) FROM assigned_services s JOIN catalog_services cs "
                          "ON cs.id = s.service_id WHERE s.id IN (SELECT id FROM assigned_services "
                          "ORDER BY id LIMIT %s)", (sample,)).fetchone()
    if not lsum == bsum == want:
        raise SystemExit(f"loop: ledger {lsum}, balances {bsum}, expected {want}")
    t_loop = t_loop_sample * n / sample
    log(f"loop: {t_loop_sample:.2f} s for {sample:,} -> {t_loop:.1f} s scaled to {n:,}")

    if args.explain:
        run_worker("explain", libpq_url(url, explain_db), args)
    if not args.keep:
        for extra in (floor_db, loop_db, explain_db):
            drop_db(url, extra)

    ratios = {"ours/floor": t_ours / t_floor, "loop/ours": t_loop / t_ours, "second/first": t_second / t_ours}
    print()
    print(f"charge run benchmark, {date.today()}: {os.cpu_count()} CPUs, PostgreSQL {server} "
          f"(shared_buffers {settings.get('shared_buffers')}, work_mem {settings.get('work_mem')}), "
          f"N={n:,}, charge date {run_date}")
    print(f"  ours: charge() + commit        {t_ours:9.2f} s")
    print(f"  floor: INSERT + UPDATE         {t_floor:9.2f} s")
    print(f"  loop: per-row ORM, scaled      {t_loop:9.2f} s   ({t_loop_sample:.2f} s for {sample:,} rows)")
    print(f"  second run, same day           {t_second:9.2f} s   (0 entries)")
    ok_all = True
    for key, value in ratios.items():
        op, bound = TARGETS[key]
        ok = value <= bound if op == "<=" else value >= bound
        ok_all &= ok
        print(f"  {key:14s} {value:9.3f}   target {op} {bound:g}: {'met' if ok else 'NOT met'}")
    digest = hashlib.sha1(repr(sorted(fp_ours.items())).encode()).hexdigest()[:12]
    print(f"  ledger: {fp_ours['entries']:,} rows, sum {fp_ours['ledger_sum']:,} = sum of balances; "
          f"fingerprint {digest}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
