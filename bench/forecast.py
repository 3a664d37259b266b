#!/usr/bin/env python
"""Benchmark of the daily low-balance pass on PostgreSQL (issue 19, section 5; bench/README.md).

    .venv/bin/python bench/forecast.py [--n N] [--database-url URL] [--date YYYY-MM-DD] [--keep]

Seeds N contracts exactly as ``bench/charge_run.py`` does (its ``generate``: one account and
one assigned service each, set-based), then makes the money varied: no credit limit, balances
spread evenly from 0 to 2,000.00 (``id * 7919 mod 200,001`` kopecks), and every fourth service a
600.00 ``daily_prorata`` one instead of the monthly ones (299.00 / 450.00 / 699.00, in advance).
The default date, 2025-03-26, puts April 1st inside the horizon of the default thresholds
(7, 3, 1 days: March 27 .. April 3), so the monthly contracts short of their price are warned.

Times ``forecast.warn(date)`` + commit (the whole pass: the bound over every contract, the
day-by-day expansion of those that may run short, the notices inserted), by the wall clock and
by the CPU its PostgreSQL backend used (the machine is shared: other work inflates the first,
not the second), then the same pass again, which must record nothing. Checks the notices
against figures computed here in SQL from the rules (not from the code): a monthly contract is
warned, 5 days left, iff its balance is below its price; a daily one iff its balance is below
the running total of the eight days, with the days it covers. ``--no-seed`` reuses the seeded
database (its notices deleted).

The database (default ``bench_f``; the name must contain "bench") is dropped and recreated
(unless ``--no-seed``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import charge_run  # noqa: E402  (the same seeding, the same helpers)
from charge_run import bench_database, connect, generate, log, make_app, prepare_timing, recreate_db  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_f"
TARGET_S = 60.0
DAILY = ("Bench daily 600", 60000)


def seed(url: str, n: int, run_date: date) -> None:
    dbname = make_url(url).database
    recreate_db(url, dbname)
    generate(url, n, run_date)
    t0 = time.perf_counter()
    with connect(url, autocommit=False) as c:
        c.execute("SET synchronous_commit = off")
        c.execute("INSERT INTO catalog_services (id, name, price, charge_period, charge_mode) "
                  "VALUES (%s, %s, %s, 'month', 'daily_prorata')", (len(charge_run.SERVICES) + 1, *DAILY))
        c.execute("UPDATE assigned_services SET service_id = %s WHERE id %% 4 = 0", (len(charge_run.SERVICES) + 1,))
        c.execute("UPDATE contracts SET credit_limit = 0, balance = (id::bigint * 7919) % 200001")
        c.commit()
    with connect(url) as c:
        c.execute("VACUUM (FREEZE, ANALYZE)")
        c.execute("CHECKPOINT")
    log(f"  money and daily services set in {time.perf_counter() - t0:.1f} s")


# Expected notices, from the rules as stated (monthly: the price on Apr 1; daily pro rata 600.00:
# March 19.35 a day, March 31 the remainder 19.50, April 20.00 a day), for 2025-03-26 only.
EXPECTED = """
WITH m AS (
  SELECT c.id, c.balance AS money, cs.price, cs.charge_mode
  FROM contracts c JOIN accounts a ON a.contract_id = c.id JOIN assigned_services s ON s.account_id = a.id
  JOIN catalog_services cs ON cs.id = s.service_id
), d AS (
  SELECT id, money, CASE charge_mode WHEN 'monthly_advance' THEN CASE WHEN money < price THEN 5 END
    ELSE (SELECT count(*) FROM unnest(ARRAY[1935, 3870, 5805, 7740, 9690, 11690, 13690, 15690]) AS cum
          WHERE cum <= money) END AS days
  FROM m
)
SELECT days, count(*) FROM d WHERE days IS NOT NULL AND days <= 7 GROUP BY days ORDER BY days
"""


def check(url: str, run_date: date) -> dict:
    with connect(url) as c:
        got = dict(c.execute("SELECT (data->>'days_left')::int, count(*) FROM notices "
                             "WHERE event = 'low_balance' GROUP BY 1 ORDER BY 1").fetchall())
        if run_date == date(2025, 3, 26):
            expected = dict(c.execute(EXPECTED).fetchall())
            if got != expected:
                raise SystemExit(f"notices by days left {got} != expected {expected}")
            log(f"check: notices by days left match the rules: {got}")
        return got


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) the PostgreSQL backend ``pid`` has used: the pass's own work,
    which other processes on a shared machine do not inflate as they do the wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    p.add_argument("--date", type=date.fromisoformat, default=date(2025, 3, 26))
    p.add_argument("--no-seed", action="store_true", help="reuse the seeded database (notices emptied)")
    args = p.parse_args(argv)
    url = bench_database(args.database_url, "recreate")
    load0 = os.getloadavg()
    if args.no_seed:
        with connect(url) as c:
            c.execute("DELETE FROM notices")
        prepare_timing(url, make_url(url).database)
    else:
        log(f"seeding {args.n:,} contracts")
        seed(url, args.n, args.date)

    from sqlalchemy import text

    from portal.billing import forecast
    from portal.extensions import db

    app = make_app(url)
    with app.app_context():
        forecast.settings()  # the default thresholds (7, 3, 1): nothing saved
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
        log("pass: forecast.warn(date) + commit")
        c0, t0 = backend_cpu(pid), time.perf_counter()
        first = forecast.warn(args.date)
        db.session.commit()
        t1, cpu1 = time.perf_counter() - t0, backend_cpu(pid) - c0
        log(f"pass: {t1:.2f} s ({cpu1:.2f} s CPU in the PostgreSQL backend), {first:,} notices")
        c0, t0 = backend_cpu(pid), time.perf_counter()
        second = forecast.warn(args.date)
        db.session.commit()
        t2, cpu2 = time.perf_counter() - t0, backend_cpu(pid) - c0
        log(f"second pass, same day: {t2:.2f} s ({cpu2:.2f} s CPU), {second:,} notices")
        db.engine.dispose()
    check(url, args.date)
    if second:
        raise SystemExit("the second pass recorded notices")
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    log(f"RESULT n={args.n:,} pass={t1:.2f}s (backend CPU {cpu1:.2f}s) second={t2:.2f}s (CPU {cpu2:.2f}s) "
        f"notices={first:,} "
        f"target<= {TARGET_S:.0f}s {'met' if t1 <= TARGET_S else 'NOT met'}; load before "
        f"{'/'.join(f'{x:.1f}' for x in load0)}, after {load}")
    return 0 if t1 <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
