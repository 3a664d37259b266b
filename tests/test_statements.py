"""Bank statements in the 1C exchange format: read, matched to contracts, previewed, posted once,
the unmatched queue; bad files refused by line and field with nothing written."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal.billing import bank_1c, charging, clock, statements
from portal.billing.bank_1c import Document, Statement, StatementError
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, AuditEntry, BankPayment, BankStatement, Contract, LedgerEntry
from tests.builders import gen_account, gen_agent, gen_contract, gen_staff, gen_subscriber, gen_tariff
from tests.helpers import login

OURS = "40702810900000000001"  # the operator's account (РасчСчет)

# A statement as a bank writes it, every field this import reads (and some it ignores).
SAMPLE = """1CClientBankExchange
ВерсияФормата=1.03
Кодировка=Windows
Отправитель=Бухгалтерия предприятия
Получатель=
ДатаСоздания=02.12.2026
ВремяСоздания=09:15:00
ДатаНачала=01.12.2026
ДатаКонца=01.12.2026
РасчСчет=40702810900000000001
СекцияРасчСчет
ДатаНачала=01.12.2026
ДатаКонца=01.12.2026
РасчСчет=40702810900000000001
НачальныйОстаток=10000.00
ВсегоПоступило=3250.75
ВсегоСписано=500.00
КонечныйОстаток=12750.75
КонецРасчСчет
СекцияДокумент=Платежное поручение
Номер=417
Дата=01.12.2026
Сумма=1500.00
ПлательщикСчет=40817810099910004312
Плательщик=ИНН 771234567890 Семёнов Пётр Алексеевич
ПлательщикИНН=771234567890
Плательщик1=Семёнов Пётр Алексеевич
ПлательщикБИК=044525225
ПолучательСчет=40702810900000000001
ПолучательИНН=7701000001
Получатель1=ООО «Связь»
НазначениеПлатежа=Оплата услуг связи по договору №{number}. НДС не облагается
ДатаПоступило=01.12.2026
КонецДокумента
СекцияДокумент=Платежное поручение
Номер=9
Дата=30.11.2026
Сумма=1750.75
ПлательщикСчет=40702810500000000777
Плательщик=ИНН 7709876543 ООО "Ромашка"
ПлательщикИНН=7709876543
ПолучательСчет=40702810900000000001
ПолучательИНН=7701000001
НазначениеПлатежа=Оплата по счету 15 за ноябрь
ДатаПоступило=01.12.2026
КонецДокумента
СекцияДокумент=Платежное поручение
Номер=55
Дата=01.12.2026
Сумма=500.00
ПлательщикСчет=40702810900000000001
ПлательщикИНН=7701000001
Плательщик1=ООО «Связь»
ПолучательСчет=40702810100000000002
ПолучательИНН=7705555555
НазначениеПлатежа=Аренда за декабрь
ДатаСписано=01.12.2026
КонецДокумента
КонецФайла
"""


def sample(number="26-000417") -> bytes:
    return SAMPLE.format(number=number).replace("\n", "\r\n").encode("cp1251")


def doc(n, amount="100.00", purpose="", inn="", account=None, name="", day=1) -> Document:
    return Document(line=0, kind="Платежное поручение", number=str(n), date=date(2026, 12, day),
                    amount=Decimal(amount),
                    payer_account=account if account is not None else f"4081781000000000{n:04d}",
                    payer_inn=inn, payer_name=name, payee_account=OURS, purpose=purpose, received=date(2026, 12, day))


def file_of(*docs: Document) -> bytes:
    return bank_1c.render(Statement("1.03", "windows", date(2026, 12, 1), date(2026, 12, 31), [OURS], list(docs)))


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def entries(key_prefix="bank:") -> list[tuple[int, Decimal]]:
    db.session.expire_all()
    return sorted(db.session.execute(select(LedgerEntry.contract_id, LedgerEntry.amount)
                                     .where(LedgerEntry.idempotency_key.like(f"{key_prefix}%"))).all())


# -- reading the format ---------------------------------------------------------------------------

def test_a_windows_1251_statement_is_read_with_every_field():
    """Does the import read the header, each document's fields as the bank wrote them, and tell
    money in (to our account) from money out?"""
    st = bank_1c.parse(sample())
    assert (st.version, st.encoding, st.date_from, st.date_to) == ("1.03", "windows", date(2026, 12, 1),
                                                                     date(2026, 12, 1))
    assert st.accounts == [OURS]
    assert len(st.documents) == 3
    first, second, out = st.documents
    assert first.line == 20 and first.kind == "Платежное поручение"
    assert (first.number, first.date, first.amount) == ("417", date(2026, 12, 1), Decimal("1500.00"))
    assert (first.payer_account, first.payer_inn, first.payer_name) == (
        "40817810099910004312", "771234567890", "Семёнов Пётр Алексеевич")
    assert (first.payee_account, first.payee_inn) == (OURS, "7701000001")
    assert first.purpose == "Оплата услуг связи по договору №26-000417. НДС не облагается"
    assert (first.received, first.written_off) == (date(2026, 12, 1), None)
    # no Плательщик1: the name is Плательщик without its «ИНН …» prefix
    assert (second.amount, second.date, second.payer_name) == (Decimal("1750.75"), date(2026, 11, 30), 'ООО "Ромашка"')
    assert out.written_off == date(2026, 12, 1) and out.received is None
    assert [d.number for d in st.incoming()] == ["417", "9"]


@pytest.mark.parametrize("broken, line, field", [
    (lambda t: t.replace("Сумма=1750.75\r\n", ""), 35, "Сумма"),              # a document without Сумма: its start
    (lambda t: t.replace("Сумма=1750.75", "Сумма=1 750,75"), 38, "Сумма"),
    (lambda t: t.replace("Дата=30.11.2026", "Дата=31.11.2026"), 37, "Дата"),  # a bad date
    (lambda t: t.replace("КонецДокумента\r\nСекцияДокумент=Платежное поручение\r\nНомер=9",
                         "СекцияДокумент=Платежное поручение\r\nНомер=9", 1), 34, "КонецДокумента"),
    (lambda t: t.replace("КонецФайла\r\n", ""), 0, "КонецФайла"),
    (lambda t: t.replace("ДатаНачала=01.12.2026\r\nДатаКонца=01.12.2026\r\nРасчСчет=40702810900000000001\r\nСекция",
                         "ДатаКонца=01.12.2026\r\nРасчСчет=40702810900000000001\r\nСекция", 1), 0, "ДатаНачала"),
    (lambda t: t.replace("Сумма=1500.00", "Сумма=0.00"), 23, "Сумма"),  # a zero payment is no payment
    # fields that go into keys and fixed-width columns: a too long account, an INN that is not one
    (lambda t: t.replace("ПлательщикСчет=40817810099910004312", "ПлательщикСчет=" + "4" * 300), 24,
     "ПлательщикСчет"),
    (lambda t: t.replace("ПлательщикИНН=771234567890", "ПлательщикИНН=77123"), 26, "ПлательщикИНН"),
])
def test_a_broken_document_is_refused_naming_its_line_and_field(broken, line, field):
    """Which line and field is wrong in a statement the bank or a person broke?"""
    text = sample().decode("cp1251")
    with pytest.raises(StatementError) as e:
        bank_1c.parse(broken(text).encode("cp1251"))
    assert e.value.field == field
    if field == "КонецФайла":
        assert e.value.line == len(broken(text).splitlines())
    else:
        assert e.value.line == line


def test_a_utf8_file_and_a_file_that_is_not_1c_are_refused_by_name():
    with pytest.raises(StatementError) as e:
        bank_1c.parse(sample().decode("cp1251").encode("utf-8"))
    assert e.value.field == "Кодировка" and "UTF-8" in e.value.message
    with pytest.raises(StatementError) as e:
        bank_1c.parse("Дата;Сумма;Плательщик\r\n01.12.2026;100;Иванов\r\n".encode("cp1251"))
    assert (e.value.line, e.value.field) == (1, "1CClientBankExchange")


# -- matching -------------------------------------------------------------------------------------

def test_matching_by_number_inn_account_and_name_with_the_ambiguous_ones_left_to_staff(ctx):
    """Which contract does each payment find: the number in the purpose first, then the payer's
    INN or account on the card (one contract), and only a suggestion by name (ё = е)?"""
    by_number = gen_contract(number="26-000417")
    other = gen_contract(number="26-000418")
    by_inn = gen_contract(gen_subscriber(full_name="ООО Ромашка", kind="company", inn="7709876543"))
    by_account = gen_contract(gen_subscriber(full_name="Кузнецова Анна", bank_account="40817810000000000777"))
    two = gen_subscriber(full_name="Орлов Олег", inn="771100000001")
    gen_contract(two), gen_contract(two)
    named = gen_contract(gen_subscriber(full_name="Семёнов Пётр Алексеевич"))
    docs = [doc(1, purpose="Оплата по договору № 26-000417."),             # number, with the sentence's dot
            doc(2, purpose="по дог. 26-000417 и 26-000418"),               # two numbers: ambiguous
            doc(3, purpose="за ноябрь", inn="7709876543"),                 # INN
            doc(4, purpose="за связь", account="40817810000000000777"),     # account
            doc(5, purpose="оплата", inn="771100000001"),                  # INN of a card with two contracts
            doc(6, purpose="интернет", name="СЕМЕНОВ ПЕТР АЛЕКСЕЕВИЧ"),     # name: a suggestion only
            doc(7, purpose="за услуги 12345", name="Неизвестный")]         # nothing
    found = [(m.kind, m.contract_id, m.candidates) for m in statements.match(docs)]
    two_ids = [c.id for c in two.contracts]
    assert found == [("number", by_number.id, []), ("ambiguous", None, [by_number.id, other.id]),
                     ("inn", by_inn.id, []), ("account", by_account.id, []), ("ambiguous", None, two_ids),
                     ("name", None, [named.id]), ("none", None, [])]


def test_the_preview_counts_and_sums_and_staff_correct_a_match_before_posting(ctx):
    c = gen_contract(number="26-000001")
    d = gen_contract(number="26-000002")
    st = statements.import_statement(file_of(doc(1, "100.10", "дог 26-000001"), doc(2, "200.20", "26-000001 26-000002"),
                                             doc(3, "300.30", "без номера"), doc(4, "400.40", "дог 26-000002")),
                                     "dec.txt", actor="test")
    db.session.commit()
    assert statements.summary(st.id) == {"matched": (2, Decimal("500.50")), "ambiguous": (1, Decimal("200.20")),
                                         "unmatched": (1, Decimal("300.30"))}
    ambiguous = db.session.scalar(select(BankPayment).where(BankPayment.match == "ambiguous"))
    statements.set_contract(ambiguous.id, "26-000002", actor="test")
    db.session.commit()
    assert statements.post_statement(st.id, actor="test") == {"posted": 3, "duplicate": 0, "queued": 1}
    db.session.commit()
    assert entries() == sorted([(c.id, Decimal("100.10")), (d.id, Decimal("200.20")), (d.id, Decimal("400.40"))])
    # the payments list's source: a bank statement
    assert set(db.session.scalars(select(LedgerEntry.source).where(LedgerEntry.kind == "payment"))) == {"statement"}
    assert fresh(Contract, d.id).balance == Decimal("600.60")
    with pytest.raises(BillingError):
        statements.post_statement(st.id, actor="test")


# -- posting once ---------------------------------------------------------------------------------

def test_the_same_file_imported_twice_posts_once_and_the_preview_says_already_posted(app, client):
    """I upload yesterday's statement again by mistake: does the preview say «already posted»,
    and does posting it move no money?"""
    with app.app_context():
        gen_staff("anna")
        c = gen_contract(number="26-000417")
        cid = c.id
    login(client, "anna")
    for round_ in (1, 2):
        page = client.get("/statements?lang=en").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = client.post("/statements", data={"csrf_token": csrf, "file": (__import__("io").BytesIO(sample()),
                                                                              "statement.txt")},
                        content_type="multipart/form-data")
        assert r.status_code == 303, r.get_data(as_text=True)
        preview = client.get(r.headers["Location"] + "?lang=en").get_data(as_text=True)
        if round_ == 1:
            assert 'data-group="matched" data-count="1" data-sum="1500.00"' in preview
            assert 'data-group="unmatched" data-count="1" data-sum="1750.75"' in preview
        else:
            assert 'data-group="duplicate" data-count="1" data-sum="1500.00"' in preview
            assert "already posted" in preview
        sid = int(r.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        assert client.post(f"/statements/{sid}/post", data={"csrf_token": csrf}).status_code == 303
    with app.app_context():
        assert entries() == [(cid, Decimal("1500.00"))]
        assert fresh(Contract, cid).balance == Decimal("1500.00")
        # the first file's unmatched payment waits in the queue; the second file's copy of it too
        assert db.session.scalar(select(func.count()).select_from(BankPayment)
                                 .where(BankPayment.status == "queued")) == 2


@pytest.fixture
def server(app, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def staff_session(base: str, name: str) -> tuple[requests.Session, str]:
    s = requests.Session()
    page = s.get(f"{base}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    s.post(f"{base}/login", data={"login": name, "password": "password123", "csrf_token": csrf}, timeout=10)
    page = s.get(f"{base}/statements", timeout=10).text
    return s, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_two_staff_posting_one_preview_at_once_post_it_once(app, server):
    """Two cashiers press «Post» on the same preview at the same moment (four times each): is
    every payment in the ledger once?"""
    with app.app_context():
        gen_staff("anna"), gen_staff("boris", role="manager")
        cs = [gen_contract(number=f"26-1000{i:02d}") for i in range(20)]
        st = statements.import_statement(file_of(*(doc(i, f"{100 + i}.50", f"дог. {c.number}")
                                                   for i, c in enumerate(cs))), "dec.txt", actor="test")
        db.session.commit()
        sid, expected = st.id, sorted((c.id, Decimal(f"{100 + i}.50")) for i, c in enumerate(cs))
    sessions = [staff_session(server, name) for name in ("anna", "boris")] * 4

    def post(pair):
        s, csrf = pair
        return s.post(f"{server}/statements/{sid}/post", data={"csrf_token": csrf}, timeout=60,
                      allow_redirects=False).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(post, sessions)) == [303] * 8
    with app.app_context():
        assert entries() == expected
        assert sum(fresh(Contract, cid).balance for cid, _ in expected) == sum(a for _, a in expected)
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "statement.post")) == 1


# -- the queue ------------------------------------------------------------------------------------

def test_a_queued_payment_assigned_to_a_contract_is_posted_and_a_dismissed_one_kept(app, client):
    with app.app_context():
        gen_staff("anna")
        c = gen_contract(number="26-000777")
        st = statements.import_statement(file_of(doc(1, "640.00", "за интернет", name="Сидорова"),
                                                 doc(2, "99.99", "возврат депозита")), "dec.txt", actor="test")
        db.session.commit()
        statements.post_statement(st.id, actor="test")
        db.session.commit()
        first, second = db.session.scalars(select(BankPayment.id).order_by(BankPayment.id)).all()
        cid = c.id
    login(client, "anna")
    page = client.get("/statements/queue?lang=en").get_data(as_text=True)
    assert f'data-payment="{first}"' in page and f'data-payment="{second}"' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(f"/statements/payments/{first}/assign", data={"csrf_token": csrf, "contract": "26-000777"})
    assert r.status_code == 303
    again = client.post(f"/statements/payments/{first}/assign", data={"csrf_token": csrf, "contract": "26-000777"})
    assert again.status_code == 303  # refused with a message, nothing moved
    r = client.post(f"/statements/payments/{second}/dismiss", data={"csrf_token": csrf, "reason": ""})
    with app.app_context():
        assert fresh(BankPayment, second).status == "queued"  # a reason is required
    client.post(f"/statements/payments/{second}/dismiss", data={"csrf_token": csrf, "reason": "возврат, не наш"})
    with app.app_context():
        assert entries() == [(cid, Decimal("640.00"))]
        assert fresh(Contract, cid).balance == Decimal("640.00")
        p1, p2 = fresh(BankPayment, first), fresh(BankPayment, second)
        assert (p1.status, p1.contract_id, p1.resolved_by) == ("posted", cid, "staff:anna")
        assert (p2.status, p2.reason) == ("dismissed", "возврат, не наш")
    assert f'data-payment="{first}"' not in client.get("/statements/queue").get_data(as_text=True)


# -- bad files ------------------------------------------------------------------------------------

def test_a_bad_file_is_refused_naming_the_line_and_nothing_is_written(app, client):
    with app.app_context():
        gen_staff("anna")
        gen_contract(number="26-000417")
    login(client, "anna")
    page = client.get("/statements?lang=en").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    bad = sample().decode("cp1251").replace("Сумма=1750.75\r\n", "").encode("cp1251")
    r = client.post("/statements?lang=en", data={"csrf_token": csrf, "file": (__import__("io").BytesIO(bad), "s.txt")},
                    content_type="multipart/form-data")
    assert r.status_code == 422
    assert "Line 35, Сумма" in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BankStatement)) == 0
        assert db.session.scalar(select(func.count()).select_from(BankPayment)) == 0
        assert entries() == []


# -- the block ------------------------------------------------------------------------------------

def test_a_posted_statement_payment_unblocks_a_balance_blocked_account(ctx):
    with clock.as_of(date(2026, 8, 10)):
        c = gen_contract(number="26-000900")
        a = gen_account(contract=c, tariff=gen_tariff([], monthly_fee="300.00"), agent=gen_agent(platform="webhook"))
    with clock.as_of(date(2026, 9, 1)):
        charging.charge()
        db.session.commit()
    assert fresh(Account, a.id).reasons == ["balance"]
    due = -fresh(Contract, c.id).balance
    with clock.as_of(date(2026, 9, 2)):
        st = statements.import_statement(file_of(doc(1, str(due + 300), "за интернет по договору 26-000900")),
                                         "sep.txt", actor="test")
        statements.post_statement(st.id, actor="test")
        db.session.commit()
    assert fresh(Account, a.id).status == "active"
    # the days of September the unblock gave back are charged at once
    assert fresh(Contract, c.id).balance < Decimal("300.00")


def test_the_demo_sample_reads_and_the_card_refuses_a_malformed_inn(ctx):
    """Does the sample shipped for `make run` read (four payments in, one out skipped), and does
    the subscriber card name a malformed INN or account?"""
    from pathlib import Path

    from portal.billing import directory

    st = bank_1c.parse((Path(statements.__file__).parent.parent / "demo_data" / "statement_1c.txt").read_bytes())
    assert [d.number for d in st.incoming()] == ["311", "12", "5", "48"] and len(st.documents) == 5
    with pytest.raises(BillingError) as e:
        directory.save_subscriber({"full_name": "Тест", "inn": "12345", "bank_account": "4081"}, actor="test")
    assert set(e.value.fields) == {"inn", "bank_account"}
    s = directory.save_subscriber({"full_name": "Тест", "inn": "7709876543", "bank_account": "40817810000000004433"},
                                  actor="test")
    assert (s.inn, s.bank_account) == ("7709876543", "40817810000000004433")


def test_the_file_error_reads_in_russian(app, client):
    """A Russian-speaking cashier uploads a statement with a bad date: is the error in Russian,
    with the line and the field?"""
    with app.app_context():
        gen_staff("anna")
    login(client, "anna")
    page = client.get("/statements?lang=ru").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    bad = sample().decode("cp1251").replace("Дата=30.11.2026", "Дата=31.11.2026").encode("cp1251")
    r = client.post("/statements?lang=ru", data={"csrf_token": csrf, "file": (__import__("io").BytesIO(bad), "s.txt")},
                    content_type="multipart/form-data")
    assert r.status_code == 422
    assert "Строка 37, Дата: не дата вида дд.мм.гггг: 31.11.2026" in r.get_data(as_text=True)


def test_a_viewer_reads_statements_but_cannot_upload_post_or_assign(app, client):
    with app.app_context():
        gen_staff("vera", role="viewer")
        gen_contract(number="26-000417")
        st = statements.import_statement(sample(), "dec.txt", actor="test")
        db.session.commit()
        sid = st.id
        pid = db.session.scalar(select(BankPayment.id).where(BankPayment.contract_id.is_(None)))
    login(client, "vera")
    page = client.get(f"/statements/{sid}?lang=en").get_data(as_text=True)
    assert 'data-group="matched" data-count="1"' in page and "post-statement" not in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(f"/statements/{sid}/post", data={"csrf_token": csrf}).status_code == 403
    assert client.post(f"/statements/payments/{pid}/contract",
                       data={"csrf_token": csrf, "contract": "26-000417"}).status_code == 403
    with app.app_context():
        assert fresh(BankStatement, sid).status == "preview" and entries() == []
