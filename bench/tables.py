#!/usr/bin/env python
"""Benchmark of the staff list views at a million accounts on PostgreSQL (see bench/README.md).

    .venv/bin/python bench/tables.py [--n N] [--db URL] [--reuse] [--repeat R] [--rate RPS] [--closed]

Builds (or, with --reuse, keeps) a database with N subscribers, contracts and accounts with
Russian names, logins and addresses, a mix of statuses, 2N ledger entries (half of them
payments), sync states for the accounts on platforms (a few dead) and N audit entries; then
drives the admin lists (/subscribers, /contracts, /accounts, /payments, /audit) as htmx does
(``HX-Request: true``, logged in as staff). By default (H7) in open loop, as the team's benches
are measured (bench/openloop.py): the portal served by gunicorn with the repository's
gunicorn.conf.py, every request of ``--repeat`` rounds (shuffled) due at start + k / ``--rate``
whether or not earlier ones have answered, and timed from its due time; it prints the rate
offered and served, p50/p95/p99/max per list and kind, the worst case of each list beside its
pooled figure, CPU per request and the load average. ``--closed`` is the former closed loop in
process (Flask's test client, one request after another), kept to find why a request is slow:
each request's SQL statements and EXPLAIN of the slowest. The requests:

* the first page; a word typed letter by letter; common (unselective), rare and absent terms, a
  phone, two words, an address with its flat;
* every sort in both directions, alone and with every term;
* every filter value with every sort, alone and with a common and a rare term; every pair of
  filters (their first and last values) with every sort;
* the money lists' totals (a request of their own) for every filter value and term;
* "Show more" five times in every sort, plain and searched; the top bar's search box.

With ``--closed`` it prints p50 / p95 / max (and the SQL time's p95, our CPU's p50) per list and
kind, the worst case per list, the pooled figures, the 20 slowest requests with each
statement's time, and EXPLAIN (ANALYZE, BUFFERS) of the slowest SQL statement of the slowest
requests. Exit code 0 when every kind of every list has p95 <= 50 ms (and, open loop, every
answer was right). ``--exports`` instead times CSV and XLSX
exports of whole lists (1M rows) and their peak memory, each in a fresh process.

The database (default ``bench_tables``) is dropped and recreated unless --reuse finds it
filled with N subscribers; its name must contain "bench". Indexes declared on the models are
dropped before the load and built afterwards (faster than maintaining them row by row), and on
--reuse any index the models declare and the database lacks is created, so an index added to
the models is measured without regenerating the data.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from charge_run import (  # noqa: E402
    StatementTimer,
    bench_database,
    connect,
    libpq_url,
    log,
    make_app,
    recreate_db,
    short_sql,
)
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_tables"
TARGET_P95_MS = 50.0
STAFF_LOGIN = "bench-admin"

# --------------------------------------------------------------------------- data

# (male, female, latin) surnames; the first ones are the most frequent (the pick is skewed)
SURNAMES = [
    ("Иванов", "Иванова", "ivanov"), ("Смирнов", "Смирнова", "smirnov"), ("Кузнецов", "Кузнецова", "kuznetsov"),
    ("Попов", "Попова", "popov"), ("Васильев", "Васильева", "vasilev"), ("Петров", "Петрова", "petrov"),
    ("Соколов", "Соколова", "sokolov"), ("Михайлов", "Михайлова", "mikhailov"), ("Новиков", "Новикова", "novikov"),
    ("Федоров", "Федорова", "fedorov"), ("Морозов", "Морозова", "morozov"), ("Волков", "Волкова", "volkov"),
    ("Алексеев", "Алексеева", "alekseev"), ("Лебедев", "Лебедева", "lebedev"), ("Семенов", "Семенова", "semenov"),
    ("Егоров", "Егорова", "egorov"), ("Павлов", "Павлова", "pavlov"), ("Козлов", "Козлова", "kozlov"),
    ("Степанов", "Степанова", "stepanov"), ("Николаев", "Николаева", "nikolaev"), ("Орлов", "Орлова", "orlov"),
    ("Андреев", "Андреева", "andreev"), ("Макаров", "Макарова", "makarov"), ("Никитин", "Никитина", "nikitin"),
    ("Захаров", "Захарова", "zakharov"), ("Зайцев", "Зайцева", "zaitsev"), ("Соловьев", "Соловьева", "solovev"),
    ("Борисов", "Борисова", "borisov"), ("Яковлев", "Яковлева", "yakovlev"), ("Григорьев", "Григорьева", "grigorev"),
    ("Романов", "Романова", "romanov"), ("Воробьев", "Воробьева", "vorobev"), ("Сергеев", "Сергеева", "sergeev"),
    ("Кузьмин", "Кузьмина", "kuzmin"), ("Фролов", "Фролова", "frolov"), ("Александров", "Александрова", "aleksandrov"),
    ("Дмитриев", "Дмитриева", "dmitriev"), ("Королев", "Королева", "korolev"), ("Гусев", "Гусева", "gusev"),
    ("Киселев", "Киселева", "kiselev"), ("Ильин", "Ильина", "ilin"), ("Максимов", "Максимова", "maksimov"),
    ("Поляков", "Полякова", "polyakov"), ("Сорокин", "Сорокина", "sorokin"),
    ("Виноградов", "Виноградова", "vinogradov"),
    ("Ковалев", "Ковалева", "kovalev"), ("Белов", "Белова", "belov"), ("Медведев", "Медведева", "medvedev"),
    ("Антонов", "Антонова", "antonov"), ("Тарасов", "Тарасова", "tarasov"), ("Жуков", "Жукова", "zhukov"),
    ("Баранов", "Баранова", "baranov"), ("Филиппов", "Филиппова", "filippov"), ("Комаров", "Комарова", "komarov"),
    ("Давыдов", "Давыдова", "davydov"), ("Беляев", "Беляева", "belyaev"), ("Герасимов", "Герасимова", "gerasimov"),
    ("Богданов", "Богданова", "bogdanov"), ("Осипов", "Осипова", "osipov"), ("Сидоров", "Сидорова", "sidorov"),
    ("Матвеев", "Матвеева", "matveev"), ("Титов", "Титова", "titov"), ("Марков", "Маркова", "markov"),
    ("Миронов", "Миронова", "mironov"), ("Крылов", "Крылова", "krylov"), ("Куликов", "Куликова", "kulikov"),
    ("Карпов", "Карпова", "karpov"), ("Власов", "Власова", "vlasov"), ("Мельников", "Мельникова", "melnikov"),
    ("Денисов", "Денисова", "denisov"), ("Гаврилов", "Гаврилова", "gavrilov"), ("Тихонов", "Тихонова", "tikhonov"),
    ("Казаков", "Казакова", "kazakov"), ("Афанасьев", "Афанасьева", "afanasev"), ("Данилов", "Данилова", "danilov"),
    ("Савельев", "Савельева", "savelev"), ("Тимофеев", "Тимофеева", "timofeev"), ("Фомин", "Фомина", "fomin"),
    ("Чернов", "Чернова", "chernov"), ("Абрамов", "Абрамова", "abramov"), ("Мартынов", "Мартынова", "martynov"),
    ("Ефимов", "Ефимова", "efimov"), ("Федотов", "Федотова", "fedotov"), ("Щербаков", "Щербакова", "shcherbakov"),
    ("Назаров", "Назарова", "nazarov"), ("Калинин", "Калинина", "kalinin"), ("Исаев", "Исаева", "isaev"),
    ("Чернышев", "Чернышева", "chernyshev"), ("Быков", "Быкова", "bykov"), ("Маслов", "Маслова", "maslov"),
    ("Родионов", "Родионова", "rodionov"), ("Коновалов", "Коновалова", "konovalov"), ("Лазарев", "Лазарева", "lazarev"),
    ("Воронин", "Воронина", "voronin"), ("Климов", "Климова", "klimov"), ("Филатов", "Филатова", "filatov"),
    ("Пономарев", "Пономарева", "ponomarev"), ("Голубев", "Голубева", "golubev"),
    ("Кудрявцев", "Кудрявцева", "kudryavtsev"),
    ("Прохоров", "Прохорова", "prokhorov"), ("Наумов", "Наумова", "naumov"), ("Потапов", "Потапова", "potapov"),
    ("Журавлев", "Журавлева", "zhuravlev"), ("Овчинников", "Овчинникова", "ovchinnikov"),
    ("Трофимов", "Трофимова", "trofimov"),
    ("Леонов", "Леонова", "leonov"), ("Соболев", "Соболева", "sobolev"), ("Ермаков", "Ермакова", "ermakov"),
    ("Колесников", "Колесникова", "kolesnikov"), ("Гончаров", "Гончарова", "goncharov"),
    ("Емельянов", "Емельянова", "emelyanov"),
    ("Никифоров", "Никифорова", "nikiforov"), ("Грачев", "Грачева", "grachev"), ("Котов", "Котова", "kotov"),
    ("Гришин", "Гришина", "grishin"), ("Ефремов", "Ефремова", "efremov"), ("Архипов", "Архипова", "arkhipov"),
    ("Громов", "Громова", "gromov"), ("Кириллов", "Кириллова", "kirillov"), ("Малышев", "Малышева", "malyshev"),
    ("Панов", "Панова", "panov"), ("Моисеев", "Моисеева", "moiseev"), ("Румянцев", "Румянцева", "rumyantsev"),
    ("Акимов", "Акимова", "akimov"), ("Кондратьев", "Кондратьева", "kondratev"), ("Бирюков", "Бирюкова", "biryukov"),
    ("Горбунов", "Горбунова", "gorbunov"), ("Анисимов", "Анисимова", "anisimov"), ("Еремин", "Еремина", "eremin"),
    ("Тихомиров", "Тихомирова", "tikhomirov"), ("Галкин", "Галкина", "galkin"), ("Лукьянов", "Лукьянова", "lukyanov"),
    ("Михеев", "Михеева", "mikheev"), ("Скворцов", "Скворцова", "skvortsov"), ("Юдин", "Юдина", "yudin"),
    ("Белоусов", "Белоусова", "belousov"), ("Нестеров", "Нестерова", "nesterov"), ("Симонов", "Симонова", "simonov"),
    ("Прохоренко", "Прохоренко", "prokhorenko"), ("Шевченко", "Шевченко", "shevchenko"), ("Ким", "Ким", "kim"),
    ("Бондаренко", "Бондаренко", "bondarenko"), ("Ткаченко", "Ткаченко", "tkachenko"), ("Мусин", "Мусина", "musin"),
    ("Хабибуллин", "Хабибуллина", "khabibullin"), ("Гарипов", "Гарипова", "garipov"), ("Алиев", "Алиева", "aliev"),
]
# a rare surname: about one subscriber in 20,000 (the "rare term" of the search)
RARE = ("Цыбульский", "Цыбульская", "tsybulskiy")
MALE = ["Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Максим", "Евгений", "Иван", "Михаил", "Артём",
        "Николай", "Владимир", "Павел", "Роман", "Олег", "Игорь", "Денис", "Константин", "Виктор", "Юрий",
        "Антон", "Кирилл", "Илья", "Никита", "Егор", "Василий", "Пётр", "Григорий", "Тимур", "Руслан"]
FEMALE = ["Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Анна", "Светлана", "Мария", "Екатерина", "Юлия",
          "Анастасия", "Людмила", "Галина", "Марина", "Надежда", "Дарья", "Валентина", "Ксения", "Виктория",
          "Алина", "Полина", "Любовь", "Вера", "Оксана", "Евгения", "Кристина", "Софья", "Лариса", "Нина", "Зоя"]
PATRONYMICS = [("Александрович", "Александровна"), ("Сергеевич", "Сергеевна"), ("Дмитриевич", "Дмитриевна"),
               ("Андреевич", "Андреевна"), ("Алексеевич", "Алексеевна"), ("Иванович", "Ивановна"),
               ("Михайлович", "Михайловна"), ("Николаевич", "Николаевна"), ("Владимирович", "Владимировна"),
               ("Викторович", "Викторовна"), ("Юрьевич", "Юрьевна"), ("Петрович", "Петровна"),
               ("Васильевич", "Васильевна"), ("Анатольевич", "Анатольевна"), ("Евгеньевич", "Евгеньевна"),
               ("Олегович", "Олеговна"), ("Игоревич", "Игоревна"), ("Павлович", "Павловна"),
               ("Геннадьевич", "Геннадьевна"), ("Борисович", "Борисовна")]
COMPANY_FORMS = ["ООО", "ИП", "АО", "ООО", "ООО"]
COMPANY_WORDS = ["Ромашка", "Вектор", "Альфа-Строй", "ТехноСервис", "Северный ветер", "Гарант", "Меридиан",
                 "Стройинвест", "Автомир", "Фортуна", "Радуга", "Прогресс", "Спектр", "Восход", "Лидер",
                 "Домовой", "Уют", "Эталон", "Орбита", "Магистраль"]
CITIES = ["г. Казань", "г. Казань", "г. Казань", "г. Зеленодольск", "пгт Васильево", "с. Высокая Гора",
          "г. Набережные Челны", "г. Альметьевск"]
STREETS = ["ул. Ленина", "ул. Пушкина", "ул. Гагарина", "ул. Мира", "ул. Советская", "ул. Школьная",
           "ул. Садовая", "ул. Молодёжная", "ул. Лесная", "ул. Центральная", "ул. Новая", "ул. Победы",
           "ул. Кирова", "ул. Чехова", "ул. Баумана", "пр. Победы", "пр. Ямашева", "ул. Декабристов",
           "ул. Чистопольская", "ул. Тукая", "ул. Карла Маркса", "ул. Гвардейская", "ул. Восстания",
           "ул. Академика Сахарова", "ул. Фучика", "ул. Зорге", "ул. Адоратского", "ул. Хади Такташа",
           "ул. Мусы Джалиля", "ул. Космонавтов", "пер. Дорожный", "ул. Журналистов"]
DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "rambler.ru", "inbox.ru"]
# (prefix of the payment id, comment, author)
PAYERS = [("sber", "Сбербанк Онлайн", "api:sber"), ("sber", "Сбербанк Онлайн", "api:sber"),
          ("tinkoff", "Т-Банк", "api:tinkoff"), ("yoomoney", "ЮMoney", "api:yoomoney"),
          ("qiwi", "Терминал QIWI", "api:qiwi"), ("cash", "Касса офиса", "staff:kassir"),
          ("sbp", "СБП по QR-коду", "api:sbp")]
STAFF = ["olga", "kassir", "ivan.petrov", "admin", "support1", "support2"]
# (name, kind, platform); the share of accounts on each agent follows
AGENTS = [("Интернет", "radius", None), ("IPTV «Смотрёшка»", "iptv", "smotreshka"),
          ("IPTV Stalker", "iptv", "stalker"), ("Домофон «Интерсвязь»", "intercom", "intersvyaz"),
          ("Разовые услуги", "services", None)]
TARIFFS = ["Домашний 100", "Домашний 300", "Домашний 500", "Гигабит", "Эконом", "Пенсионный", "Бизнес 200",
           "ТВ Базовый", "ТВ Оптимальный", "Домофон"]


# a contract's search text, as portal/models/search.py builds it (its number, then its
# subscriber's text); also run by ensure_indexes when the column is new (--reuse)
CONTRACT_TEXT = """
UPDATE contracts c SET search_text = concat_ws(' ', nullif(lower(c.number), ''), nullif(s.search_text, ''))
FROM subscribers s WHERE s.id = c.subscriber_id"""
# columns added to the models since the data was generated, and how to fill them
FILLS = {("contracts", "search_text"): CONTRACT_TEXT}
# the payments' search texts (portal/models/payment_texts.py: what its triggers write for each
# payment), set-based; also run by ensure_indexes when the table is new (--reuse)
PAYMENT_TEXTS = """
INSERT INTO payment_texts (entry_id, contract_id, key, comment, payer, created_at, source, cashier_id)
SELECT l.id, l.contract_id, l.idempotency_key, l.comment, c.search_text, l.created_at, l.source, l.cashier_id
FROM ledger_entries l JOIN contracts c ON c.id = l.contract_id WHERE l.kind = 'payment' ORDER BY l.id"""
# tables added to the models since the data was generated, and how to fill them
TABLE_FILLS = {"payment_texts": PAYMENT_TEXTS}
# the models' triggers (payment_texts'), off while the rows are loaded and filled set-based
TRIGGERS = [("ledger_entries", "ledger_entries_payment_texts"), ("contracts", "contracts_payment_texts")]


def _u(g: str, salt: int) -> str:
    """A deterministic uniform [0, 1) value of the integer expression ``g`` (SQL)."""
    return f"((hashint8(({g})::bigint * 1000003 + {salt})::bigint + 2147483648) / 4294967296.0)"


def _pick(arr: str, u: str, skew: bool = False) -> str:
    """arr[...] by a uniform value; skewed picks favour the first elements (common surnames)."""
    x = f"({u}) * ({u})" if skew else u
    return f"({arr})[1 + floor(cardinality({arr}) * {x})::int]"


def generate(url: str, n: int) -> None:
    """Schema by db.create_all() (with its indexes built after the load), rows by
    generate_series: no Python loop over rows."""
    from werkzeug.security import generate_password_hash

    from portal.extensions import db

    app = make_app(url)
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    indexes = model_indexes()
    with connect(url, autocommit=False) as c:
        for ix in indexes:  # rebuilt after the load
            c.execute(f'DROP INDEX IF EXISTS "{ix.name}"')
        c.execute("SET synchronous_commit = off")
        c.execute("SET maintenance_work_mem = '512MB'")
        for table, trigger in TRIGGERS:  # (on again after the set-based fill of payment_texts)
            c.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"')
        p = {
            "n": n,
            "sm": [s[0] for s in SURNAMES] + [RARE[0]], "sf": [s[1] for s in SURNAMES] + [RARE[1]],
            "sl": [s[2] for s in SURNAMES] + [RARE[2]], "nsur": len(SURNAMES),
            "male": MALE, "female": FEMALE, "pm": [x[0] for x in PATRONYMICS], "pf": [x[1] for x in PATRONYMICS],
            "cforms": COMPANY_FORMS, "cwords": COMPANY_WORDS, "cities": CITIES, "streets": STREETS,
            "domains": DOMAINS, "pid": [x[0] for x in PAYERS], "pcomment": [x[1] for x in PAYERS],
            "pauthor": [x[2] for x in PAYERS], "staff": STAFF, "tariffs": TARIFFS,
        }
        c.execute("INSERT INTO agents (id, name, kind, platform) SELECT i, a.name, a.kind, a.platform "
                  "FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY a(name, kind, platform, i)",
                  ([a[0] for a in AGENTS], [a[1] for a in AGENTS], [a[2] for a in AGENTS]))
        c.execute("INSERT INTO tariffs (id, name, kind, monthly_fee, is_multi) SELECT i, t, 'internet', "
                  "30000 + 10000 * i, false FROM unnest(%s::text[]) WITH ORDINALITY x(t, i)", (TARIFFS,))
        c.execute("INSERT INTO staff_users (id, login, full_name, password_hash, role, is_enabled, created_at) "
                  "VALUES (1, %s, 'Bench admin', %s, 'admin', true, now())",
                  (STAFF_LOGIN, generate_password_hash("bench-password")))
        steps = [
            # who each subscriber is: surname (skewed pick, a rare one now and then), sex, first name...
            ("people", f"""
CREATE TEMP TABLE people AS
SELECT g,
       CASE WHEN {_u('g', 1)} < 0.00005 THEN %(nsur)s + 1
            ELSE 1 + floor(%(nsur)s * {_u('g', 2)} * {_u('g', 2)})::int END AS si,
       {_u('g', 3)} < 0.5 AS female, {_u('g', 4)} < 0.03 AS company,
       {_u('g', 5)} AS u5, {_u('g', 6)} AS u6, {_u('g', 7)} AS u7
FROM generate_series(1, %(n)s) g"""),
            ("subscribers", f"""
INSERT INTO subscribers (id, kind, full_name, phones, email, postal_address, cabinet_login, created_at)
SELECT g, CASE WHEN company THEN 'company' ELSE 'person' END,
       CASE WHEN company THEN {_pick('%(cforms)s::text[]', 'u5')} || ' «' || {_pick('%(cwords)s::text[]', 'u6')}
                              || '»' || CASE WHEN u7 < 0.5 THEN '' ELSE ' ' || (g %% 97) END
            WHEN female THEN (%(sf)s::text[])[si] || ' ' || {_pick('%(female)s::text[]', 'u5')} || ' '
                             || {_pick('%(pf)s::text[]', 'u6')}
            ELSE (%(sm)s::text[])[si] || ' ' || {_pick('%(male)s::text[]', 'u5')} || ' '
                 || {_pick('%(pm)s::text[]', 'u6')} END,
       json_build_array('+7 9' || lpad((abs(hashint8(g)) %% 1000000000)::text, 9, '0')),
       CASE WHEN u7 < 0.6 THEN (%(sl)s::text[])[si] || '.' || g || '@' || {_pick('%(domains)s::text[]', 'u7')} END,
       NULL,
       CASE WHEN u7 < 0.7 THEN (%(sl)s::text[])[si] || g END,
       now() - (%(n)s - g) * interval '3 minutes'
FROM people"""),
            # the ledger: 2N rows, every other one a payment, in time order
            ("ledger (temp)", f"""
CREATE TEMP TABLE led AS
SELECT g AS id, 1 + floor(%(n)s * {_u('g', 11)})::int AS contract_id,
       CASE WHEN g %% 2 = 0 THEN 'payment' ELSE 'charge' END AS kind,
       CASE WHEN g %% 2 = 0 THEN 10000 * (3 + floor(27 * {_u('g', 12)})::int)
            ELSE -100 * (299 + 100 * floor(6 * {_u('g', 12)})::int) END AS amount,
       now() - (2 * %(n)s - g) * (interval '90 days' / (2 * %(n)s)) AS created_at,
       CASE WHEN g %% 2 = 0 THEN
            CASE WHEN {_u('g', 13)} < 0.03 THEN 'Оплата за ' || (ARRAY['январь','февраль','март','апрель'])[1 + g %% 4]
                 ELSE {_pick('%(pcomment)s::text[]', _u('g', 14))} END END AS comment,
       CASE WHEN g %% 2 = 0 THEN {_pick('%(pauthor)s::text[]', _u('g', 14))} ELSE 'system' END AS author,
       CASE WHEN g %% 2 = 0 THEN {_pick('%(pid)s::text[]', _u('g', 14))} || '-'
            || lpad(to_hex(hashint8(g)), 8, '0') || '-' || g END AS idempotency_key,
       NULL::int AS assigned_service_id,  -- (no assigned services here: the foreign key)
       CASE WHEN g %% 2 = 1 THEN date_trunc('month', now() - (2 * %(n)s - g) * (interval '90 days' / (2 * %(n)s)))::date
            END AS period_start
FROM generate_series(1, 2 * %(n)s) g"""),
            ("contracts", f"""
INSERT INTO contracts (id, number, subscriber_id, credit_limit, do_not_block, balance, created_at)
SELECT g, (100000 + g)::text, g, CASE WHEN {_u('g', 21)} < 0.1 THEN 50000 ELSE 0 END,
       {_u('g', 22)} < 0.01, coalesce(b.balance, 0), now() - (%(n)s - g) * interval '3 minutes'
FROM generate_series(1, %(n)s) g
LEFT JOIN (SELECT contract_id, sum(amount) AS balance FROM led GROUP BY contract_id) b ON b.contract_id = g
ORDER BY g"""),
            ("ledger_entries", """
INSERT INTO ledger_entries (id, contract_id, kind, amount, created_at, comment, author, idempotency_key,
                            assigned_service_id, period_start)
SELECT id, contract_id, kind, amount, created_at, comment, author, idempotency_key, assigned_service_id,
       period_start FROM led ORDER BY id"""),
            # accounts: 82%% active, 9%% blocked (balance or manager), 5%% inactive, 4%% disabled
            ("accounts", f"""
INSERT INTO accounts (id, contract_id, login, agent_id, tariff_id, house, flat, status, block_reasons,
                      status_changed_on, created_at)
SELECT g, g, (%(sl)s::text[])[si] || g,
       CASE WHEN {_u('g', 31)} < 0.55 THEN 1 WHEN {_u('g', 31)} < 0.75 THEN 2 WHEN {_u('g', 31)} < 0.85 THEN 3
            WHEN {_u('g', 31)} < 0.97 THEN 4 ELSE 5 END,
       CASE WHEN {_u('g', 32)} < 0.05 THEN NULL ELSE 1 + floor(%(tn)s * {_u('g', 33)} * {_u('g', 33)})::int END,
       {_pick('%(cities)s::text[]', _u('g', 34))} || ', ' || {_pick('%(streets)s::text[]', _u('g', 35), True)}
           || ', д. ' || (1 + floor(120 * {_u('g', 36)})::int)
           || CASE WHEN {_u('g', 37)} < 0.2 THEN ' корп. ' || (1 + g %% 4) ELSE '' END,
       CASE WHEN {_u('g', 38)} < 0.8 THEN (1 + floor(300 * {_u('g', 39)})::int)::text END,
       CASE WHEN {_u('g', 40)} < 0.82 THEN 'active' WHEN {_u('g', 40)} < 0.91 THEN 'blocked'
            WHEN {_u('g', 40)} < 0.96 THEN 'inactive' ELSE 'disabled' END,
       CASE WHEN {_u('g', 40)} >= 0.82 AND {_u('g', 40)} < 0.91 THEN
            CASE WHEN {_u('g', 41)} < 0.8 THEN 1 WHEN {_u('g', 41)} < 0.95 THEN 2 ELSE 4 END ELSE 0 END,
       (now() - (abs(hashint8(g + 7)) %% 400) * interval '1 day')::date,
       now() - (%(n)s - g) * interval '3 minutes'
FROM people ORDER BY g"""),
            # the folded search texts, as portal/models/search.py builds them (lower case, ё as
            # е, the phone as its digits, the flat as "кв. N")
            ("subscribers.search_text", """
UPDATE subscribers SET search_text = concat_ws(' ', nullif(replace(lower(full_name), 'ё', 'е'), ''),
                                               nullif(lower(email), ''), nullif(lower(cabinet_login), ''),
                                               regexp_replace(phones->>0, '\\D', '', 'g'))"""),
            ("contracts.search_text", CONTRACT_TEXT),
            ("payment_texts", PAYMENT_TEXTS),
            ("accounts.search_text", """
UPDATE accounts SET search_text = concat_ws(' ', lower(login),
                                            concat_ws(', ', nullif(replace(lower(house), 'ё', 'е'), ''),
                                                      'кв. ' || flat))"""),
            # sync states of the accounts on platforms: mostly ok, some pending/retry, a few dead
            ("sync_states", f"""
INSERT INTO sync_states (account_id, platform, state, desired, actual, last_error, attempts, next_attempt_at,
                         last_attempt_at, synced_at)
SELECT a.id, ag.platform, s.state, '{{}}'::json, '{{}}'::json,
       CASE WHEN s.state IN ('retry', 'dead') THEN 'HTTP 502 from ' || ag.platform END,
       CASE s.state WHEN 'dead' THEN 8 WHEN 'retry' THEN 3 ELSE 1 END,
       CASE WHEN s.state IN ('pending', 'retry') THEN now() + interval '5 minutes' END,
       now() - interval '1 hour', CASE WHEN s.state = 'ok' THEN now() - interval '1 hour' END
FROM accounts a JOIN agents ag ON ag.id = a.agent_id AND ag.platform IS NOT NULL
CROSS JOIN LATERAL (SELECT CASE WHEN a.id %% 5000 = 7 THEN 'dead' WHEN {_u('a.id', 51)} < 0.015 THEN 'pending'
                                WHEN {_u('a.id', 51)} < 0.02 THEN 'retry' ELSE 'ok' END AS state) s
ORDER BY a.id"""),
            # the audit log: N entries of staff, the system, the API and the platforms
            ("audit_log", f"""
INSERT INTO audit_log (id, at, actor, action, object_type, object_id, summary)
SELECT gs.g, now() - (%(n)s - gs.g) * (interval '90 days' / %(n)s), actor, x.action, x.otype,
       1 + floor(%(n)s * {_u('gs.g', 61)})::int,
       x.verb || ' ' || CASE x.otype WHEN 'account' THEN (%(sl)s::text[])[p.si] || p.g
                                     WHEN 'contract' THEN (100000 + p.g)::text
                                     WHEN 'subscriber' THEN (%(sm)s::text[])[p.si]
                                     ELSE '#' || p.g END
FROM generate_series(1, %(n)s) gs(g)
JOIN people p ON p.g = 1 + floor(%(n)s * {_u('gs.g', 61)})::int
CROSS JOIN LATERAL (SELECT CASE WHEN {_u('gs.g', 62)} < 0.4 THEN 'system'
                                WHEN {_u('gs.g', 62)} < 0.8
                                     THEN 'staff:' || {_pick('%(staff)s::text[]', _u('gs.g', 63))}
                                WHEN {_u('gs.g', 62)} < 0.95 THEN {_pick('%(pauthor)s::text[]', _u('gs.g', 63))}
                                ELSE 'platform:smotreshka' END AS actor) a
CROSS JOIN LATERAL (SELECT * FROM (VALUES
    (0.00, 'account', 'account.block', 'Блокировка счёта'), (0.20, 'account', 'account.unblock', 'Разблокировка счёта'),
    (0.35, 'account', 'account.activate', 'Активация счёта'),
    (0.45, 'contract', 'ledger.payment', 'Платёж по договору'),
    (0.65, 'subscriber', 'subscriber.update', 'Изменены данные абонента'),
    (0.80, 'assigned_service', 'service.assign', 'Подключена услуга'),
    (0.950, 'tariff', 'tariff.update', 'Изменён тариф'), (0.970, 'agent', 'agent.update', 'Изменён агент'),
    (0.980, 'catalog_service', 'service.update', 'Изменена услуга'),
    (0.990, 'staff_user', 'staff.update', 'Изменён сотрудник'),
    (0.995, 'api_token', 'api_token.issue', 'Выпущен API-токен'),
    (0.997, 'platform_connection', 'platform.update', 'Изменено подключение платформы'),
    (0.9985, 'system', 'sync.reconcile', 'Сверка с платформой'), (0.9995, 'charge_run', 'charge.run', 'Списание'))
    v(lo, otype, action, verb)
    WHERE v.lo <= {_u('gs.g', 64)} ORDER BY v.lo DESC LIMIT 1) x
ORDER BY gs.g"""),
        ]
        p["tn"] = len(TARIFFS)
        for what, sql in steps:
            t0 = time.perf_counter()
            cur = c.execute(sql, p)
            log(f"  {what}: {cur.rowcount:,} rows in {time.perf_counter() - t0:.1f} s")
        for table in ("agents", "tariffs", "staff_users", "subscribers", "contracts", "accounts", "ledger_entries",
                      "sync_states", "audit_log"):
            c.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for table, trigger in TRIGGERS:
            c.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER "{trigger}"')
        c.commit()
    ensure_indexes(url)
    with connect(url) as c:
        c.execute("VACUUM FULL subscribers, contracts, accounts")  # the search_text UPDATEs left a dead copy
        c.execute("VACUUM (FREEZE, ANALYZE)")
        c.execute("CHECKPOINT")


def model_indexes() -> list:
    """The indexes (not constraints) db.create_all() makes on PostgreSQL."""
    from sqlalchemy.dialects import postgresql

    import portal.models  # noqa: F401  (every table on the metadata)
    from portal.extensions import db

    dialect = postgresql.dialect()
    out = []
    for table in db.metadata.sorted_tables:
        for ix in table.indexes:
            ddl_if = getattr(ix, "_ddl_if", None)
            if ddl_if is not None and ddl_if.dialect is not None:
                names = (ddl_if.dialect,) if isinstance(ddl_if.dialect, str) else tuple(ddl_if.dialect)
                if dialect.name not in names:
                    continue
            out.append(ix)
    return out


def ensure_indexes(url: str) -> None:
    """Create every model table and index the database lacks (timed: an index build is a cost
    too)."""
    from sqlalchemy import create_engine

    from portal.config import normalize_db_url

    engine = create_engine(normalize_db_url(url))
    with engine.connect() as conn:
        conn.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        conn.commit()
        import portal.models  # noqa: F401
        from portal.extensions import db

        had = {r[0] for r in conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        db.metadata.create_all(conn)  # tables added to the models since (empty), and pg_trgm
        conn.commit()
        for name, sql in TABLE_FILLS.items():  # (their indexes built after the rows, below)
            if name in had:
                continue
            for ix in db.metadata.tables[name].indexes:
                conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{ix.name}"')
            t0 = time.perf_counter()
            n = conn.exec_driver_sql(sql).rowcount
            conn.commit()
            log(f"  table {name} added and filled: {n:,} rows in {time.perf_counter() - t0:.1f} s")
        # columns added to the models since: nullable (or with their server default), filled
        # by FILLS where the bench's lists need the data
        added = []
        have_cols = {(t, c) for t, c in conn.exec_driver_sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")}
        for table in db.metadata.sorted_tables:
            for col in table.columns:
                if (table.name, col.name) not in have_cols:
                    ddl = f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {col.type.compile(conn.dialect)}'
                    if col.server_default is not None:  # (a string default is a literal; text() is SQL)
                        arg = col.server_default.arg
                        ddl += f" DEFAULT {arg.text}" if hasattr(arg, "text") else \
                            " DEFAULT '" + str(arg).replace("'", "''") + "'"
                    conn.exec_driver_sql(ddl)
                    log(f"  column {table.name}.{col.name} added")
                    if (table.name, col.name) in FILLS:
                        added.append(table.name)
                        t0 = time.perf_counter()
                        n = conn.exec_driver_sql(FILLS[table.name, col.name]).rowcount
                        log(f"  {table.name}.{col.name} filled: {n:,} rows in {time.perf_counter() - t0:.1f} s")
        conn.commit()
        for name in added:  # (the fill left a dead copy of each row)
            with connect(url) as c:
                c.execute(f'VACUUM FULL "{name}"')
        have = {r[0] for r in conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        for ix in model_indexes():
            if ix.name in have:
                continue
            t0 = time.perf_counter()
            ix.create(conn)
            conn.commit()
            log(f"  index {ix.name} built in {time.perf_counter() - t0:.1f} s")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    for name in added:  # (and the visibility map VACUUM FULL leaves empty: index-only scans)
        with connect(url) as c:
            c.execute(f'VACUUM (FREEZE, ANALYZE) "{name}"')


def filled(url: str, n: int) -> bool:
    try:
        with connect(url) as c:
            return c.execute("SELECT count(*) FROM subscribers").fetchone()[0] == n
    except psycopg_errors() as exc:  # no database, or no tables
        log(f"no reusable data: {str(exc).splitlines()[0]}")
        return False


def psycopg_errors():
    import psycopg

    return (psycopg.OperationalError, psycopg.errors.UndefinedTable)


# --------------------------------------------------------------------------- the cases

# per list: (a word typed letter by letter, a common term, a rare term, a term with no match);
# "common" is unselective on purpose (hundreds of thousands of rows hold it)
TERMS = {
    "subscribers": ("Кузнецова", "иванов", "цыбульск", "щъщъ"),
    "contracts": ("1234567", "777", "1000777", "x-0"),
    "accounts": ("kuznetsov", "ленина", "tsybulsk", "qxzqj"),
    "payments": ("tinkoff", "сбербанк", "-1234568", "qxzqj"),
    "audit": ("staff:olga", "блокировка", "tsybulsk", "qxzqj"),
}
# more terms searched with every sort and every filter (a phone, a name in two words, a flat...)
EXTRA_TERMS = {
    "subscribers": ("куз", "петр петрович", "+7 912", "kuznetsov"),
    "contracts": ("кузнецова", "иванов", "1000"),
    "accounts": ("kuz", "кв. 2", "казань"),
    "payments": ("sber", "кузнецова", "иванов"),
    "audit": ("staff:", "ivanov", "system"),
}
GLOBAL_TERMS = ("иванов", "кузнецова", "цыбульск", "петр петрович", "+7 912", "8912", "1000777",
                "kuznetsov123", "ленина, д. 5", "кв. 2", "щъщъ", "00:1A:79")
PREFIXES = (1, 2, 3, 5)
SHOW_MORE = 5


def cases(app) -> list[tuple[str, str, str, list[dict]]]:
    """(list, kind, label, [request args...]) for every list: every search, filter and sort the
    list offers and their combinations (each filter value with each sort in both directions,
    with no term, an unselective and a rare one; each sort with every term); a case with
    ``more`` follows "Show more" that many times, each request timed on its own."""
    from portal.admin.lists import ACCOUNTS, AUDIT, CONTRACTS, PAYMENTS, SUBSCRIBERS

    out = []
    with app.test_request_context():
        for spec in (SUBSCRIBERS, CONTRACTS, ACCOUNTS, PAYMENTS, AUDIT):
            name = spec.endpoint.split(".")[1]
            typed, common, rare, none = TERMS[name]
            terms = [typed, common, rare, none, *EXTRA_TERMS[name]]
            sorts = [s for key in spec.sorts for s in (key, "-" + key)]
            out.append((name, "first page", "", [{}]))
            for k in PREFIXES:
                out.append((name, "typing", typed[:k], [{"q": typed[:k]}]))
            for term in terms:
                out.append((name, "search", term, [{"q": term}]))
            for sort in sorts:
                out.append((name, "sort", sort, [{"sort": sort}]))
                for term in (typed[:3], *terms):  # a search in an order the user picked (header click)
                    out.append((name, "search + sort", f"{term} / {sort}", [{"q": term, "sort": sort}]))
            for f in spec.filters:
                for value, _title in f.options():
                    for sort in sorts:
                        out.append((name, "filter + sort", f"{f.name}={value} / {sort}",
                                    [{f.name: value, "sort": sort}]))
                        for term in (common, rare):
                            out.append((name, "filter + search + sort", f"{f.name}={value} / {term} / {sort}",
                                        [{f.name: value, "q": term, "sort": sort}]))
            if len(spec.filters) > 1:  # every pair of filters, with their first and last values
                for i, f in enumerate(spec.filters):
                    for g in spec.filters[i + 1:]:
                        fo, go = f.options(), g.options()
                        if not fo or not go:
                            continue
                        for fv in {fo[0][0], fo[-1][0]}:
                            for gv in {go[0][0], go[-1][0]}:
                                for sort in sorts:
                                    out.append((name, "two filters + sort", f"{f.name}={fv} {g.name}={gv} / {sort}",
                                                [{f.name: fv, g.name: gv, "sort": sort}]))
            if spec.totals:  # the money lists' totals, a request of their own
                out.append((name, "totals", "", [{"totals": "1"}]))
                for term in (common, rare):
                    out.append((name, "totals", term, [{"q": term, "totals": "1"}]))
                for f in spec.filters:
                    for value, _title in f.options():
                        out.append((name, "totals", f"{f.name}={value}", [{f.name: value, "totals": "1"}]))
            out.append((name, "show more x5", "", [{"more": SHOW_MORE}]))
            for sort in sorts:
                out.append((name, "show more x5", sort, [{"sort": sort, "more": SHOW_MORE}]))
                out.append((name, "show more x5, searched", f"{common} / {sort}",
                            [{"q": common, "sort": sort, "more": SHOW_MORE}]))
                out.append((name, "show more x5, searched", f"{typed} / {sort}",
                            [{"q": typed, "sort": sort, "more": SHOW_MORE}]))
        for term in GLOBAL_TERMS:
            out.append(("search", "global search", term, [{"q": term}]))
            out.append(("search", "global search, Enter", term, [{"q": term, "go": "1"}]))
    return out


NEXT = re.compile(r'<tr class="more">.*?hx-get="([^"]+)"', re.S)


def run_case(client, recorder, path: str, args: dict, samples: list, slow: list, label: str = "") -> None:
    """Time one case: the request, and then "Show more" as many times as asked."""
    from urllib.parse import urlencode

    more = args.pop("more", 0)
    url = f"/{path}?{urlencode(args)}" if args else f"/{path}"
    for step in range(more + 1):
        recorder.rows.clear()
        t0 = time.perf_counter()
        c0 = time.process_time()
        r = client.get(url, headers={"HX-Request": "true"})
        dt = (time.perf_counter() - t0) * 1000
        cpu = (time.process_time() - c0) * 1000
        if r.status_code not in (200, 302):
            raise SystemExit(f"{url}: HTTP {r.status_code}")
        html = r.get_data(as_text=True)
        sql = sum(x[0] for x in recorder.rows) * 1000
        samples.append((dt, cpu, sql, len(recorder.rows), f"{label} #{step}" if more else label))
        top = max(recorder.rows, key=lambda x: x[0]) if recorder.rows else (0.0, "", None)
        slow.append((dt, url, top, [round(x[0] * 1000, 1) for x in recorder.rows]))
        if step < more:
            m = NEXT.search(html)
            if not m:
                break
            url = m.group(1).replace("&amp;", "&")
            assert "after=" in url, url


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _line(name: str, what: str, xs: list[tuple]) -> str:
    wall = [x[0] for x in xs]
    flag = "  <-- over" if pct(wall, 95) > TARGET_P95_MS else ""
    return (f"{name:12s} {what:26s} {len(xs):5d} {pct(wall, 50):7.1f} {pct(wall, 95):7.1f} {max(wall):7.1f}"
            f" {pct([x[2] for x in xs], 95):7.1f} {pct([x[1] for x in xs], 50):7.1f}{flag}")


def measure(url: str, repeat: int, explain_top: int, only: set[str] | None) -> int:
    from portal.extensions import db
    from portal.models import StaffUser

    app = make_app(url)
    app.config["SESSION_COOKIE_SECURE"] = False  # the test client talks plain http
    with app.app_context():
        staff = db.session.scalar(db.select(StaffUser).where(StaffUser.login == STAFF_LOGIN))
        staff_id = staff.get_id()
        recorder = StatementTimer(db.engine)  # per request: .rows cleared before each
    client = app.test_client()
    with client.session_transaction() as s:  # what a successful login leaves in the session
        from portal.security import TIMES_KEY

        s["_user_id"] = staff_id
        s["_fresh"] = True
        s[TIMES_KEY] = {"staff": [int(time.time())] * 2}  # the login time the session expiry checks
    all_cases = [c for c in cases(app) if only is None or c[0] in only]
    log(f"{len(all_cases)} cases ({sum(1 + r[0].get('more', 0) for *_x, r in all_cases)} requests a round)")

    # a warm-up pass (templates compiled, connections open, pages cached), not counted
    for name, _kind, _label, reqs in all_cases:
        for args in reqs:
            run_case(client, recorder, name, dict(args), [], [])

    results: dict[tuple[str, str], list[tuple]] = {}
    slow: list = []
    for _ in range(repeat):
        for name, kind, label, reqs in all_cases:
            for args in reqs:
                run_case(client, recorder, name, dict(args), results.setdefault((name, kind), []), slow, label)

    print()
    print(f"server time per request (ms; in-process, Flask test client, HX-Request: true, staff session), "
          f"{repeat} rounds; load {os.getloadavg()[0]:.1f} at the end")
    head = f"{'list':12s} {'kind':26s} {'n':>5s} {'p50':>7s} {'p95':>7s} {'max':>7s} {'sql p95':>7s} {'cpu p50':>7s}"
    print(head)
    by_list: dict[str, list[tuple]] = {}
    for (name, kind), xs in results.items():
        by_list.setdefault(name, []).extend(xs)
        print(_line(name, kind, xs))
    print()
    print("worst case per list (the case whose requests' p95 is highest; label = term / filter / sort):")
    for name in by_list:
        per_case: dict[tuple[str, str], list[float]] = {}
        for (n, kind), xs in results.items():
            for x in xs:
                if n == name:
                    per_case.setdefault((kind, x[4]), []).append(x[0])
        (kind, label), walls = max(per_case.items(), key=lambda kv: (pct(kv[1], 95), max(kv[1])))
        print(f"{name:12s} {kind:26s} {label!r}: p95 {pct(walls, 95):.1f}, max {max(walls):.1f} ms "
              f"({len(walls)} requests)")
    print()
    print(head.replace("kind", "all cases"))
    everything = []
    for name, xs in by_list.items():
        everything.extend(xs)
        print(_line(name, "", xs))
    print(_line("pooled", "", everything))
    walls = [x[0] for x in everything]
    p95 = pct(walls, 95)
    over = [(name, kind) for (name, kind), xs in results.items() if pct([x[0] for x in xs], 95) > TARGET_P95_MS]
    ok = not over
    print(f"\npooled p95 {p95:.1f} ms; every kind of every list within p95 <= {TARGET_P95_MS:g} ms: "
          f"{'yes' if ok else 'NO: ' + ', '.join(f'{n} {k}' for n, k in over)}")

    from urllib.parse import unquote

    print("\nthe slowest requests (ms; then each SQL statement's ms in order):")
    for dt, req, _top, each in sorted(slow, key=lambda x: -x[0])[:20]:
        print(f"  {dt:7.1f}  {unquote(req)}  sql {each}")

    # EXPLAIN of the slowest statement of the slowest distinct requests
    seen, picked = set(), []
    for dt, req, top, _each in sorted(slow, key=lambda x: -x[0]):
        if top[1] and re.match(r"\s*(SELECT|WITH)", top[1], re.I) and req not in seen:
            seen.add(req)
            picked.append((dt, req, top))
        if len(picked) >= explain_top:
            break
    with app.app_context():
        for dt, req, (sdt, stmt, params) in picked:
            print(f"\n=== slowest request {req}: {dt:.1f} ms; its slowest statement {sdt * 1000:.1f} ms:")
            print("    " + short_sql(stmt, 400))
            print(f"    parameters: {params}")
            conn = db.session.connection()
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + stmt, params).fetchall()
            db.session.rollback()
            for (line,) in plan:
                print("   " + line)
    return 0 if ok else 1


# --------------------------------------------------------------------------- exports

def export_one(url: str, name: str, fmt: str, query: str) -> None:
    """One export through the app (test client, the response read chunk by chunk as a browser
    would, never held whole); prints rows, bytes, seconds and this process's peak RSS before
    and after. Run in a fresh process per export, so the peak is that export's."""
    import resource

    from portal.extensions import db
    from portal.models import StaffUser
    from portal.security import TIMES_KEY

    app = make_app(url)
    app.config["SESSION_COOKIE_SECURE"] = False
    with app.app_context():
        staff_id = db.session.scalar(db.select(StaffUser).where(StaffUser.login == STAFF_LOGIN)).get_id()
    client = app.test_client()
    with client.session_transaction() as s:
        s["_user_id"], s["_fresh"], s[TIMES_KEY] = staff_id, True, {"staff": [int(time.time())] * 2}
    client.get(f"/{name}")  # the app warmed up: imports, templates, a connection
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    r = client.get(f"/{name}/export.{fmt}?{query}", buffered=False)
    first, size, lines = None, 0, 0
    for chunk in r.response:
        if first is None:
            first = time.perf_counter() - t0
        size += len(chunk)
        if fmt == "csv":
            lines += chunk.count(b"\n")
    r.close()
    dt = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = f"{lines - 1:,} rows, " if fmt == "csv" else ""
    print(f"export {name}.{fmt} {query or '(everything)'}: HTTP {r.status_code}, {rows}{size / 2**20:.1f} MiB in "
          f"{dt:.1f} s (first byte after {first or 0:.2f} s; {time.process_time() - c0:.1f} s of CPU in this "
          f"process); peak RSS {rss0:.0f} MiB before, {rss1:.0f} MiB after", flush=True)


def exports(url: str) -> None:
    import subprocess

    for name, fmt, query in (("accounts", "csv", ""), ("payments", "csv", ""), ("accounts", "xlsx", ""),
                             ("subscribers", "csv", "sort=name"), ("contracts", "csv", "q=иванов&sort=balance")):
        subprocess.run([sys.executable, __file__, "--db", url, "--export-one", f"{name}.{fmt}", "--query", query],
                       check=True)


# --------------------------------------------------------------------------- open loop (H7)

def _get(port: int, path: str, cookie: str, timeout: float) -> tuple[int, bytes]:
    """GET ``path`` as htmx does, on a fresh connection (gunicorn.conf.py closes each one after
    its response), read to the server's close. Returns (status, body)."""
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHX-Request: true\r\nCookie: {cookie}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    status_line, _, rest = raw.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {raw[:80]!r}")
    return int(parts[1]), rest.partition(b"\r\n\r\n")[2]


def _staff_cookie(app) -> str:
    """The session cookie a staff login leaves (signed with the portal's SECRET_KEY)."""
    from portal.extensions import db
    from portal.models import StaffUser
    from portal.security import TIMES_KEY

    with app.app_context():
        staff_id = db.session.scalar(db.select(StaffUser).where(StaffUser.login == STAFF_LOGIN)).get_id()
    value = app.session_interface.get_signing_serializer(app).dumps(
        {"_user_id": staff_id, "_fresh": True, TIMES_KEY: {"staff": [int(time.time())] * 2}})
    return f"{app.config['SESSION_COOKIE_NAME']}={value}"


def _urls(port: int, cookie: str, case_list: list, timeout: float) -> list[tuple[str, str, str, str]]:
    """(list, kind, label, URL) of every request of a round. Each case is requested once in
    order, not timed (the warm-up: templates compiled, connections open, pages cached); "Show
    more" follows the cursor each page links to, so its pages can be scheduled as requests of
    their own (the same rows in every round: the data does not change)."""
    from urllib.parse import urlencode

    out = []
    for name, kind, label, reqs in case_list:
        for args in reqs:
            args = dict(args)
            more = args.pop("more", 0)
            url = f"/{name}?{urlencode(args)}" if args else f"/{name}"
            for step in range(more + 1):
                status, body = _get(port, url, cookie, timeout)
                if status not in (200, 302):  # (302: Enter in the top bar opened the single hit)
                    raise SystemExit(f"{url}: HTTP {status} in the warm-up")
                out.append((name, kind, f"{label} #{step}" if more else label, url))
                if step < more:
                    m = NEXT.search(body.decode(errors="replace"))
                    if not m:
                        break
                    url = m.group(1).replace("&amp;", "&")
    return out


def open_loop(url: str, repeat: int, only: set[str] | None, rate: float, threads: int, port: int,
              redis_url: str | None, timeout: float) -> int:
    """The lists served by the portal as production serves it (gunicorn, bench/openloop.py), on
    a schedule: request k is due at start + k / rate whether or not earlier ones have answered,
    and is timed from its due time (no coordinated omission). The rounds' requests are shuffled
    (a fixed seed), so heavy cases do not come in a burst. Prints offered and served rate, how
    late the generator was, p50/p95/p99/max per list and kind, the worst case per list and the
    pooled figures, with the load average; exit 0 when every kind's p95 <= 50 ms."""
    import random

    import openloop

    instance, database = openloop.environment("bench-tables-", url, redis_url)
    os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
    openloop.embedded_redis()
    from portal import create_app

    app = create_app()
    cookie = _staff_cookie(app)
    case_list = [c for c in cases(app) if only is None or c[0] in only]
    portal = openloop.Portal(port, "gunicorn", "wsgi", None).start()
    try:
        t0 = time.perf_counter()
        round_urls = _urls(port, cookie, case_list, timeout)
        log(f"{len(case_list)} cases, {len(round_urls)} requests a round (warm-up {time.perf_counter() - t0:.0f} s)")
        items = round_urls * repeat
        random.Random(16).shuffle(items)
        interval = 1.0 / rate

        def send(item, due, rec) -> None:
            name, kind, label, path = item
            rec["case"] = (name, kind, label, path)
            status, _body = _get(port, path, cookie, timeout)
            t = time.monotonic()
            rec["ms"][f"{name}: {kind}"] = (t - due) * 1000
            rec["answered"].append(t)
            if status not in (200, 302):
                rec["wrong"] = (path, status)

        meter = openloop.CpuMeter(portal.process.pid, database, openloop.redis_pid(os.environ["REDIS_URL"]))
        load_before, cpu_before = os.getloadavg(), meter.snapshot()
        start, records = openloop.run(items, interval, threads, send)
        cpu_after, load_after = meter.snapshot(), os.getloadavg()
    finally:
        portal.stop()
    print(f"\nopen loop, {repeat} rounds shuffled; load average {load_before[0]:.2f} -> {load_after[0]:.2f} "
          f"(1 min; {os.cpu_count()} CPUs, shared)")
    kinds = [k for k in dict.fromkeys(f"{c[0]}: {c[1]}" for c in case_list) if any(k in r["ms"] for r in records)]
    _served, _p99, wrong = openloop.report(rate, interval, len(items), start, records, kinds, threads)
    openloop.report_cpu(cpu_before, cpu_after, len(items) - len(wrong), database, load_before, load_after,
                        "requests")
    pct_ = openloop.pct
    by_list: dict[str, list[float]] = {}
    per_case: dict[tuple[str, str, str], list[float]] = {}
    for r in records:
        if "case" in r and r["ms"]:
            name, kind, label, _path = r["case"]
            ms = next(iter(r["ms"].values()))
            by_list.setdefault(name, []).append(ms)
            per_case.setdefault((name, kind, label), []).append(ms)
    print("\nworst case per list (the case whose requests' p95 is highest; label = term / filter / sort), "
          "beside the list's pooled figure (ms from the due time):")
    for name, walls in by_list.items():
        (_n, kind, label), worst = max(((k, v) for k, v in per_case.items() if k[0] == name),
                                       key=lambda kv: (pct_(kv[1], 95), max(kv[1])))
        print(f"  {name:12s} pooled p95 {pct_(walls, 95):7.1f}, max {max(walls):7.1f} (n={len(walls)}); worst: "
              f"{kind} {label!r} p95 {pct_(worst, 95):.1f}, max {max(worst):.1f} ({len(worst)} requests)")
    everything = [ms for walls in by_list.values() for ms in walls]
    print(f"  {'pooled':12s} p95 {pct_(everything, 95):7.1f}, max {max(everything or [0]):7.1f} "
          f"(n={len(everything)})")
    over = [k for k in kinds if pct_([r["ms"][k] for r in records if k in r["ms"]], 95) > TARGET_P95_MS]
    print(f"\nevery kind of every list within p95 <= {TARGET_P95_MS:g} ms: "
          f"{'yes' if not over and not wrong else 'NO: ' + ', '.join(over) + (' (wrong answers)' if wrong else '')}")
    from urllib.parse import unquote

    print("\nthe slowest requests (ms from the due time):")
    for r in sorted((r for r in records if r["ms"]), key=lambda r: -next(iter(r["ms"].values())))[:20]:
        print(f"  {next(iter(r['ms'].values())):7.1f}  {unquote(r['case'][3])}")
    return 0 if not over and not wrong else 1


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="subscribers = contracts = accounts (default 1,000,000)")
    p.add_argument("--db", default=os.environ.get("BENCH_TABLES_URL", DEFAULT_URL),
                   help=f"dedicated database, dropped and recreated unless --reuse (default {DEFAULT_URL})")
    p.add_argument("--reuse", action="store_true",
                   help="keep the database if it already holds N subscribers (missing model indexes are built)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds over all cases (default 3)")
    p.add_argument("--explain", type=int, default=1, metavar="K",
                   help="EXPLAIN ANALYZE the slowest statement of the K slowest requests (default 1)")
    p.add_argument("--lists", help="only these lists, comma-separated (e.g. accounts,payments)")
    p.add_argument("--closed", action="store_true",
                   help="closed loop in process (one request after another, Flask's test client): each request's "
                        "SQL statements and EXPLAIN of the slowest, for finding why; not the figure to report")
    p.add_argument("--rate", type=float, default=8.0, help="open loop: requests offered per second (default 8)")
    p.add_argument("--threads", type=int, default=64, help="open loop: load-generator threads (default 64)")
    p.add_argument("--port", type=int, default=8617, help="open loop: the portal's port (default 8617)")
    p.add_argument("--redis-url", help="open loop: the portal's Redis (default: an embedded one)")
    p.add_argument("--timeout", type=float, default=60.0, help="open loop: seconds a request may take")
    p.add_argument("--exports", action="store_true",
                   help="instead of the lists: time CSV and XLSX exports of the whole lists (1M rows), peak memory")
    p.add_argument("--export-one", help=argparse.SUPPRESS)
    p.add_argument("--query", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.export_one:
        name, fmt = args.export_one.split(".")
        export_one(bench_database(args.db, "use"), name, fmt, args.query)
        return 0

    url = bench_database(args.db, "use")
    name = make_url(url).database

    with connect(url, "postgres") as c:
        server = c.execute("SHOW server_version").fetchone()[0].split()[0]
        settings = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in (
            "shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit")}
    log(f"PostgreSQL {server} {settings}; {os.cpu_count()} CPUs; N={args.n:,}; database {name}")
    if args.reuse and filled(url, args.n):
        log(f"reusing {name}; building the model indexes it lacks")
        ensure_indexes(url)
    else:
        log(f"generating {args.n:,} subscribers, contracts, accounts in {name}")
        t0 = time.perf_counter()
        recreate_db(url, name)
        generate(libpq_url(url), args.n)
        log(f"generated in {time.perf_counter() - t0:.1f} s")
    with connect(url) as c:
        sizes = c.execute("SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
                          "WHERE relname IN ('subscribers', 'contracts', 'accounts', 'ledger_entries', "
                          "'sync_states', 'audit_log', 'payment_texts') ORDER BY relname").fetchall()
    log("table + index sizes: " + ", ".join(f"{t} {s}" for t, s in sizes))
    if args.exports:
        log(f"exports ({datetime.now():%Y-%m-%d})")
        exports(url)
        return 0
    only = set(args.lists.split(",")) if args.lists else None
    log(f"timing the lists ({datetime.now():%Y-%m-%d}), {'closed loop' if args.closed else 'open loop'}")
    if args.closed:
        return measure(url, args.repeat, args.explain, only)
    return open_loop(url, args.repeat, only, args.rate, args.threads, args.port, args.redis_url, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
