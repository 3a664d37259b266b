"""Reading a bank statement in the 1C exchange format (``1CClientBankExchange``, version 1.02/1.03,
text in windows-1251 or, with ``Кодировка=DOS``, cp866): format work only, no billing rule here
(portal/billing/statements.py matches and posts).

The file is ``key=value`` lines: a header (ВерсияФормата, Кодировка, ДатаНачала, ДатаКонца,
РасчСчет ...), balance sections ``СекцияРасчСчет`` … ``КонецРасчСчет``, documents
``СекцияДокумент=<kind>`` … ``КонецДокумента`` and ``КонецФайла``. A document's fields used here:
Номер, Дата, Сумма, ПлательщикСчет, Плательщик / Плательщик1, ПлательщикИНН, ПолучательСчет,
ПолучательИНН, НазначениеПлатежа, ДатаПоступило, ДатаСписано. Anything that is not the format
raises ``StatementError`` naming the line and the field; nothing is half-read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

MAGIC = "1CClientBankExchange"
ENCODINGS = {"windows": "cp1251", "dos": "cp866"}
_AMOUNT = re.compile(r"^\d{1,13}(\.\d{1,2})?$")
_INN_PREFIX = re.compile(r"^ИНН\s*\d{10,12}\s+")  # «ИНН 7701234567 ООО Ромашка» in Плательщик


class StatementError(ValueError):
    """The file is not a readable statement: ``line`` (1-based, 0 for the whole file), ``field``,
    and ``message``, a %-template over ``params`` (so that the staff page can translate it)."""

    def __init__(self, line: int, field: str, message: str, **params):
        self.line, self.field, self.message, self.params = line, field, message, params
        super().__init__(f"line {line}, {field}: {self.text}")

    @property
    def text(self) -> str:
        return self.message % self.params


@dataclass
class Document:
    line: int                  # where its СекцияДокумент starts
    kind: str                  # «Платежное поручение», «Банковский ордер» ...
    number: str
    date: date
    amount: Decimal
    payer_account: str = ""
    payer_inn: str = ""
    payer_name: str = ""
    payee_account: str = ""
    payee_inn: str = ""
    purpose: str = ""
    received: date | None = None     # ДатаПоступило: credited to the payee
    written_off: date | None = None  # ДатаСписано: debited from the payer


@dataclass
class Statement:
    version: str
    encoding: str
    date_from: date
    date_to: date
    accounts: list[str] = field(default_factory=list)  # РасчСчет: the operator's accounts
    documents: list[Document] = field(default_factory=list)

    def incoming(self, own_accounts=()) -> list[Document]:
        """Money in: paid to one of our accounts (``own_accounts`` or the header's РасчСчет),
        or, when the payee account is not ours to compare, marked received and not written off."""
        ours = set(own_accounts) | set(self.accounts)
        return [d for d in self.documents
                if (d.payee_account in ours and d.payer_account not in ours)
                or (not d.payee_account and d.received and not d.written_off)]


def _date(value: str, line: int, key: str) -> date:
    try:
        return datetime.strptime(value, "%d.%m.%Y").date()
    except ValueError:
        raise StatementError(line, key, "not a date dd.mm.yyyy: %(value)s", value=value[:20]) from None


def decode(data: bytes) -> tuple[str, str]:
    """The text and its encoding name, by the header's Кодировка; a UTF-8 file (a common
    mistake when a statement was re-saved) is refused by name, not read as mojibake."""
    if not data.lstrip(b"\xef\xbb\xbf").startswith(MAGIC.encode()):
        raise StatementError(1, MAGIC, "not a 1C bank exchange file (the first line must be 1CClientBankExchange)")
    head = data[:4096]
    enc = "windows"
    for raw in head.splitlines():
        for codec in ("cp1251", "cp866"):
            key, _, value = raw.decode(codec, "replace").partition("=")
            if key.strip() == "Кодировка":
                enc = value.strip().lower()
                break
        else:
            continue
        break
    if enc not in ENCODINGS:
        raise StatementError(0, "Кодировка", "unknown encoding %(value)s (Windows or DOS)", value=enc[:20])
    try:
        data.decode("utf-8")
        utf8 = any(b > 0x7F for b in data)
    except UnicodeDecodeError:
        utf8 = False
    if utf8:
        raise StatementError(0, "Кодировка", "the file is UTF-8, expected windows-1251 (Кодировка=Windows)")
    try:
        return data.decode(ENCODINGS[enc]), enc
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise StatementError(line, "Кодировка", "a byte that is not %(value)s", value=ENCODINGS[enc]) from None


_DOC_FIELDS = {"ПлательщикСчет": "payer_account", "ПлательщикИНН": "payer_inn", "ПолучательСчет": "payee_account",
               "ПолучательИНН": "payee_inn", "НазначениеПлатежа": "purpose"}


_ACCOUNT_NO = re.compile(r"[0-9A-Za-z]{1,34}")
_INN = re.compile(r"\d{10}|\d{12}|0")  # «0» is what banks write for a payer without one
_CHECKED = (("ПлательщикСчет", _ACCOUNT_NO, "not an account number (up to 34 letters and digits): %(value)s"),
            ("ПолучательСчет", _ACCOUNT_NO, "not an account number (up to 34 letters and digits): %(value)s"),
            ("ПлательщикИНН", _INN, "not an INN (10 or 12 digits): %(value)s"),
            ("ПолучательИНН", _INN, "not an INN (10 or 12 digits): %(value)s"))


def _document(kind: str, start: int, values: dict[str, tuple[int, str]]) -> Document:
    def need(key):
        if not values.get(key, (0, ""))[1]:
            raise StatementError(start, key, "missing in the document")
        return values[key]

    line, amount = need("Сумма")
    if not _AMOUNT.match(amount):
        raise StatementError(line, "Сумма", "not an amount like 1500.00: %(value)s", value=amount[:20])
    if Decimal(amount) <= 0:
        raise StatementError(line, "Сумма", "must be above zero")
    for key, pattern, message in _CHECKED:  # they go into keys and columns of a fixed width
        at, value = values.get(key, (0, ""))
        if value and not pattern.fullmatch(value):
            raise StatementError(at, key, message, value=value[:40])
    line, number = need("Номер")
    doc = Document(line=start, kind=kind, number=number[:32], date=_date(need("Дата")[1], need("Дата")[0], "Дата"),
                   amount=Decimal(amount))
    for key, attr in _DOC_FIELDS.items():
        if key in values:
            setattr(doc, attr, values[key][1])
    # Плательщик1 is the name alone; Плательщик may carry «ИНН … » before it
    name = values.get("Плательщик1", (0, ""))[1] or _INN_PREFIX.sub("", values.get("Плательщик", (0, ""))[1])
    doc.payer_name = name[:300]
    for key, attr in (("ДатаПоступило", "received"), ("ДатаСписано", "written_off")):
        if values.get(key, (0, ""))[1]:
            setattr(doc, attr, _date(values[key][1], values[key][0], key))
    return doc


def parse(data: bytes) -> Statement:
    """The whole file, or ``StatementError``."""
    text, enc = decode(data)
    header: dict[str, tuple[int, str]] = {}
    accounts: list[str] = []
    documents: list[Document] = []
    section = None          # None (header), "account", "document"
    doc_kind, doc_start, values = "", 0, {}
    ended = False
    lines = text.splitlines()
    for n, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        if ended:
            raise StatementError(n, "КонецФайла", "text after the end of the file")
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if section == "document":
            if key == "КонецДокумента":
                documents.append(_document(doc_kind, doc_start, values))
                section = None
            elif key.startswith("Секция") or key == "КонецФайла":
                raise StatementError(n, "КонецДокумента", "the document from line %(value)s is not closed",
                                     value=doc_start)
            elif eq:
                values[key] = (n, value)
            continue
        if section == "account":
            if key == "КонецРасчСчет":
                section = None
            continue
        if key == "СекцияДокумент":
            section, doc_kind, doc_start, values = "document", value, n, {}
        elif key == "СекцияРасчСчет":
            section = "account"
        elif key == "КонецФайла":
            ended = True
        elif key == "РасчСчет":
            accounts.append(value)
        elif eq:
            header[key] = (n, value)
        else:
            raise StatementError(n, key[:40] or "?", "not a key=value line")
    if section == "document":
        raise StatementError(doc_start, "КонецДокумента", "the document is not closed")
    if not ended:
        raise StatementError(len(lines), "КонецФайла", "missing: the file is cut short")
    for key in ("ВерсияФормата", "ДатаНачала", "ДатаКонца"):
        if key not in header:
            raise StatementError(0, key, "missing in the header")
    return Statement(version=header["ВерсияФормата"][1], encoding=enc,
                     date_from=_date(header["ДатаНачала"][1], header["ДатаНачала"][0], "ДатаНачала"),
                     date_to=_date(header["ДатаКонца"][1], header["ДатаКонца"][0], "ДатаКонца"),
                     accounts=accounts, documents=documents)


def render(statement: Statement) -> bytes:
    """A statement as the bank writes it (windows-1251): the demo sample and the benchmark."""
    f = "%d.%m.%Y"
    out = [MAGIC, f"ВерсияФормата={statement.version}", "Кодировка=Windows", "Отправитель=Бухгалтерия",
           "Получатель=", f"ДатаНачала={statement.date_from:{f}}", f"ДатаКонца={statement.date_to:{f}}"]
    out += [f"РасчСчет={a}" for a in statement.accounts]
    for a in statement.accounts:
        out += ["СекцияРасчСчет", f"ДатаНачала={statement.date_from:{f}}", f"ДатаКонца={statement.date_to:{f}}",
                f"РасчСчет={a}", "КонецРасчСчет"]
    for d in statement.documents:
        out += [f"СекцияДокумент={d.kind}", f"Номер={d.number}", f"Дата={d.date:{f}}", f"Сумма={d.amount:.2f}",
                f"ПлательщикСчет={d.payer_account}", f"Плательщик=ИНН {d.payer_inn} {d.payer_name}".replace(
                    "ИНН  ", ""), f"ПлательщикИНН={d.payer_inn}", f"Плательщик1={d.payer_name}",
                f"ПолучательСчет={d.payee_account}", f"ПолучательИНН={d.payee_inn}",
                f"НазначениеПлатежа={d.purpose}"]
        if d.received:
            out.append(f"ДатаПоступило={d.received:{f}}")
        if d.written_off:
            out.append(f"ДатаСписано={d.written_off:{f}}")
        out.append("КонецДокумента")
    out.append("КонецФайла")
    return ("\r\n".join(out) + "\r\n").encode("cp1251")
