#!/usr/bin/env python
"""Benchmark of the bank statement import (issue 18 part 3; see bench/README.md).

    .venv/bin/python bench/statements.py [--contracts 100000] [--docs 10000]
        [--database-url postgresql://postgres@127.0.0.1:5432/bench_h10 | sqlite:////tmp/bench_statements.db]

Builds ``--contracts`` subscribers with one contract each (set-based inserts; 5% of the cards
carry an INN, 2% a bank account), then writes a realistic 1C file (windows-1251) of ``--docs``
incoming payments: 85% name their contract number in the purpose (in a sentence, "№", a final
dot), 6% only the payer's INN, 2% only the payer's account, 3% only the payer's name (a
suggestion: queued), 4% nothing we know (queued); plus one outgoing document per hundred, which
the import skips. It times, separately, with wall and this process's CPU time:

1. parse:  ``bank_1c.parse`` of the file;
2. match:  ``statements.import_statement`` minus its parse (matching, the preview rows, commit);
3. post:   ``statements.post_statement`` + commit (ledger rows, balances, audit, balance rule);
4. again:  the same file imported and posted a second time, which must post nothing.

and checks the end state: one ledger entry per matched document, the balances equal to the
ledger sums. The database (its name must contain "bench") is emptied first.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import BigInteger, func, insert, select, type_coerce  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_h10"
OURS = "40702810900000000001"
SURNAMES = ["Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Васильев", "Соколов", "Михайлов",
            "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов"]
NAMES = ["Иван", "Пётр", "Алексей", "Сергей", "Андрей", "Дмитрий", "Николай", "Михаил", "Олег", "Артём"]
PATRONYMICS = ["Иванович", "Петрович", "Сергеевич", "Андреевич", "Олегович", "Николаевич", "Алексеевич"]


def log(msg: str) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {msg}", flush=True)


def backend_cpu(db) -> float | None:
    """CPU seconds of this session's PostgreSQL backend (a local server: /proc), None elsewhere."""
    if db.engine.dialect.name != "postgresql":
        return None
    from sqlalchemy import text

    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    """Wall, this process's CPU and (PostgreSQL) the session backend's CPU."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.server = backend_cpu(self.db)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        after = backend_cpu(self.db)
        self.server = None if after is None or self.server is None else after - self.server

    def __str__(self):
        server = f" + {self.server:5.2f} s server CPU" if self.server is not None else ""
        return f"{self.wall:6.2f} s wall {self.cpu:6.2f} s CPU{server}"


def build(db, n: int, rng: random.Random) -> list[dict]:
    """n subscribers, one contract each; returns their rows (number, name, inn, account)."""
    from portal.models import Contract, Subscriber
    from portal.models.search import fold

    people = []
    for i in range(1, n + 1):
        name = f"{rng.choice(SURNAMES)} {rng.choice(NAMES)} {rng.choice(PATRONYMICS)} {i}"  # unique names
        people.append({"id": i, "name": name, "number": f"26-{i:06d}",
                       "inn": f"77{i:010d}" if i % 20 == 0 else None,
                       "account": f"40817810{i:012d}" if i % 50 == 7 else None})
    for start in range(0, n, 5000):
        part = people[start:start + 5000]
        db.session.execute(insert(Subscriber.__table__), [
            {"id": p["id"], "kind": "person", "full_name": p["name"], "phones": [], "inn": p["inn"],
             "bank_account": p["account"], "search_text": fold(p["name"]), "cabinet_session_version": 0}
            for p in part])
        db.session.execute(insert(Contract.__table__), [
            {"id": p["id"], "number": p["number"], "subscriber_id": p["id"], "credit_limit": Decimal("0"),
             "do_not_block": False, "balance": Decimal("0")} for p in part])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        for t in ("subscribers", "contracts"):
            db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), {n})"))
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return people


def statement_file(people: list[dict], docs: int, rng: random.Random) -> tuple[bytes, dict[int, Decimal]]:
    """The file and what it should post: {contract id: sum} for the documents that match."""
    from portal.billing.bank_1c import Document, Statement, render

    with_inn = [p for p in people if p["inn"]]
    with_account = [p for p in people if p["account"]]
    expected: dict[int, Decimal] = {}
    out = []
    day0 = date(2026, 11, 1)
    for i in range(1, docs + 1):
        roll = rng.random()
        amount = Decimal(rng.randrange(30000, 300000)) / 100
        day = day0 + timedelta(days=i % 30)
        d = Document(line=0, kind="Платежное поручение", number=str(100000 + i), date=day, amount=amount,
                     payer_account=f"4081781099{i:010d}", payer_inn="", payer_name="Плательщик",
                     payee_account=OURS, purpose="Оплата услуг", received=day)
        if roll < 0.85:
            p = rng.choice(people)
            d.payer_name = p["name"]
            d.purpose = rng.choice([f"Оплата по договору №{p['number']}. НДС не облагается",
                                    f"Интернет, дог. {p['number']} за ноябрь", f"Л/с {p['number']} услуги связи"])
            expected[p["id"]] = expected.get(p["id"], Decimal(0)) + amount
        elif roll < 0.91:
            p = rng.choice(with_inn)
            d.payer_inn, d.payer_name, d.purpose = p["inn"], p["name"], "Оплата за интернет"
            expected[p["id"]] = expected.get(p["id"], Decimal(0)) + amount
        elif roll < 0.93:
            p = rng.choice(with_account)
            d.payer_account, d.payer_name, d.purpose = p["account"], p["name"], "Услуги связи"
            expected[p["id"]] = expected.get(p["id"], Decimal(0)) + amount
        elif roll < 0.96:
            d.payer_name, d.purpose = rng.choice(people)["name"].upper(), "За связь"  # a suggestion only
        else:
            d.payer_name, d.purpose = "ООО Неизвестный плательщик", f"Оплата по счёту {i} от {day:%d.%m.%Y}"
        out.append(d)
        if i % 100 == 0:  # money out: skipped
            out.append(Document(line=0, kind="Платежное поручение", number=f"9{i}", date=day, amount=amount,
                                payer_account=OURS, payer_inn="7701000001", payer_name="ООО Связь",
                                payee_account="40702810100000000002", purpose="Аренда", written_off=day))
    st = Statement("1.03", "windows", day0, day0 + timedelta(days=29), [OURS], out)
    return render(st), expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contracts", type=int, default=100_000)
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--slow", type=float, default=0, help="print statements slower than this many seconds")
    args = ap.parse_args()
    if "bench" not in args.database_url:
        sys.exit("the database name must contain 'bench' (it is emptied)")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("CREDENTIALS_KEY", "YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMDA=")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
    from portal import create_app
    from portal.billing import bank_1c, statements
    from portal.db_setup import reset_schema
    from portal.extensions import db
    from portal.models import BankPayment, Contract, LedgerEntry

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database_url})
    rng = random.Random(args.seed)
    with app.app_context():
        if args.slow:
            from sqlalchemy import event

            @event.listens_for(db.engine, "before_cursor_execute")
            def _start(conn, cursor, statement, parameters, context, executemany):
                conn.info["t0"] = time.perf_counter()

            @event.listens_for(db.engine, "after_cursor_execute")
            def _end(conn, cursor, statement, parameters, context, executemany):
                took = time.perf_counter() - conn.info.get("t0", time.perf_counter())
                if took > args.slow:
                    log(f"slow {took:.2f} s: {' '.join(statement.split())[:300]}")

        log(f"{db.engine.dialect.name}: {args.contracts} contracts, {args.docs} documents")
        reset_schema(db)
        people = build(db, args.contracts, rng)
        data, expected = statement_file(people, args.docs, rng)
        log(f"file: {len(data) / 1e6:.1f} MB, {len(expected)} contracts to be paid")
        db.session.commit()
        with Timer(db) as t_parse:
            parsed = bank_1c.parse(data)
        assert len(parsed.incoming()) == args.docs
        with Timer(db) as t_import:
            st = statements.import_statement(data, "bench.txt", actor="bench")
            db.session.commit()
        summary = statements.summary(st.id)
        with Timer(db) as t_post:
            counts = statements.post_statement(st.id, actor="bench")
            db.session.commit()
        with Timer(db) as t_again:
            again = statements.import_statement(data, "bench.txt", actor="bench")
            db.session.commit()
            again_counts = statements.post_statement(again.id, actor="bench")
            db.session.commit()
        again_duplicates = statements.summary(again.id).get("duplicate", (0,))[0]
        # the end state
        db.session.expire_all()
        posted = dict(db.session.execute(select(LedgerEntry.contract_id, func.sum(type_coerce(
            LedgerEntry.__table__.c.amount, BigInteger))).group_by(LedgerEntry.contract_id)).all())
        ok = ({k: Decimal(v) / 100 for k, v in posted.items()} == expected
              and again_counts["posted"] == 0 and again_duplicates == counts["posted"]
              and db.session.scalar(select(func.count()).select_from(Contract).where(
                  type_coerce(Contract.__table__.c.balance, BigInteger) != func.coalesce(select(func.sum(
                      type_coerce(LedgerEntry.__table__.c.amount, BigInteger))).where(
                      LedgerEntry.contract_id == Contract.id).scalar_subquery(), 0))) == 0)
        queued = db.session.scalar(select(func.count()).select_from(BankPayment).where(BankPayment.status == "queued"))
    log(f"preview groups: { {k: v[0] for k, v in summary.items()} }; posted {counts}; queued rows {queued}")
    log(f"parse  {t_parse}")
    log(f"import {t_import}   (parse + match + the preview rows; match alone: "
        f"{t_import.cpu - t_parse.cpu:.2f} s CPU)")
    log(f"post   {t_post}")
    total = t_import.wall + t_post.wall
    cpu = t_import.cpu + t_post.cpu + (t_import.server or 0) + (t_post.server or 0)
    log(f"total  {total:6.2f} s wall, {cpu:6.2f} s CPU client + server (target <= 10 s; wall at this load: "
        f"{'met' if total <= 10 else 'NOT met'})")
    log(f"again  {t_again} (posted {again_counts['posted']}, already posted "
        f"{again_duplicates}, queued again {again_counts['queued']})")
    log(f"end state: {'OK' if ok else 'WRONG'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
