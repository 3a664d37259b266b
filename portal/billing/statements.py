"""Bank statements: each incoming payment of an uploaded 1C file (portal.billing.bank_1c reads
it) matched to a contract, shown as a preview, posted on confirmation; what matches nothing
waits in a queue for staff.

Matching, in order, each step set-based (one query for all documents, not one per document):
1. a contract number in the purpose (НазначениеПлатежа): every word of it that could be a
   contract number (``directory.CONTRACT_NUMBER_RE``, with at least one digit) looked up at
   once; exactly one contract found → matched, more → ambiguous (staff choose);
2. the payer's INN, then the payer's account, where a subscriber card has it: one subscriber
   with one contract → matched, more contracts → ambiguous;
3. the payer's name, folded as staff search folds it (``models.search.fold``: case, ё = е),
   equal to a subscriber's name → only suggested: staff confirm it.
Posting moves money through ``ledger.post_payments`` with the key
``bank:<yyyy-mm-dd>:<number>:<payer account>``, so a file imported twice, or one preview posted
by two staff at once, posts each payment once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import BigInteger, case, func, insert, select, type_coerce, update
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import BankPayment, BankStatement, Contract, LedgerEntry, Subscriber, from_minor, utcnow
from ..models.search import fold
from . import audit, ledger
from .bank_1c import Document, StatementError, parse
from .directory import CONTRACT_NUMBER_RE
from .errors import BillingError, NotFound

MAX_BYTES = 20 * 1024 * 1024  # an upload bound: a month of 10,000 payments is about 5 MB
CHUNK = 900                   # values per IN (…) list: under SQLite's parameter limit, any version
_WORD = re.compile(CONTRACT_NUMBER_RE.pattern)
_TRAILING = "./-"             # «договор 26-000123.» ends a sentence, not the number

__all__ = ["MAX_BYTES", "StatementError", "assign", "contracts_of", "dismiss", "import_statement", "match",
           "payment_key", "post_statement", "queue", "set_contract", "summary"]


def payment_key(doc: Document) -> str:
    """The ledger idempotency key of a statement payment: number, date and payer account."""
    return f"bank:{doc.date:%Y-%m-%d}:{doc.number}:{doc.payer_account}"


def _words(purpose: str) -> set[str]:
    found = set()
    for m in _WORD.finditer(purpose.replace("№", " ")):
        word = m.group().rstrip(_TRAILING)
        if any(ch.isdigit() for ch in word):
            found.add(word)
    return found


def _chunks(values):
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


@dataclass
class Match:
    kind: str = "none"             # MATCH_KINDS
    contract_id: int | None = None
    candidates: list[int] = field(default_factory=list)


def match(docs: list[Document]) -> list[Match]:
    """How each document finds its contract (the module docstring's order)."""
    result = [Match() for _ in docs]
    words = [_words(d.purpose) for d in docs]
    by_number: dict[str, int] = {}
    for part in _chunks(set().union(*words) if words else ()):
        by_number.update(db.session.execute(
            select(Contract.number, Contract.id).where(Contract.number.in_(part))).all())
    for m, ws in zip(result, words):
        ids = sorted({by_number[w] for w in ws if w in by_number})
        if len(ids) == 1:
            m.kind, m.contract_id = "number", ids[0]
        elif ids:
            m.kind, m.candidates = "ambiguous", ids
    for kind, attr, column in (("inn", "payer_inn", Subscriber.inn), ("account", "payer_account",
                                                                       Subscriber.bank_account)):
        open_ = [(m, getattr(d, attr)) for m, d in zip(result, docs) if m.kind == "none" and getattr(d, attr)]
        contracts: dict[str, list[int]] = {}
        for part in _chunks({v for _, v in open_}):
            for value, contract_id in db.session.execute(
                    select(column, Contract.id).join(Contract, Contract.subscriber_id == Subscriber.id)
                    .where(column.in_(part)).order_by(Contract.id)):
                contracts.setdefault(value, []).append(contract_id)
        for m, value in open_:
            ids = contracts.get(value, [])
            if len(ids) == 1:
                m.kind, m.contract_id = kind, ids[0]
            elif ids:
                m.kind, m.candidates = "ambiguous", ids
    open_ = [(m, fold(d.payer_name)) for m, d in zip(result, docs) if m.kind == "none" and d.payer_name.strip()]
    names: dict[str, list[int]] = {}
    folded = func.replace(func.lower(Subscriber.full_name), "ё", "е")  # models.search.fold in SQL
    for part in _chunks({n for _, n in open_}):
        for name, contract_id in db.session.execute(
                select(folded, Contract.id).join(Contract, Contract.subscriber_id == Subscriber.id)
                .where(folded.in_(part)).order_by(Contract.id)):
            names.setdefault(name, []).append(contract_id)
    for m, name in open_:
        if names.get(name):
            m.kind, m.candidates = "name", names[name]
    return result


def _mark_posted_before(statement_id: int) -> None:
    """Payments of this statement whose key the ledger has already: 'duplicate' (one statement,
    the ledger's unique key index per row)."""
    c = BankPayment.__table__.c
    db.session.execute(update(BankPayment.__table__).where(
        c.statement_id == statement_id, c.status == "pending",
        select(LedgerEntry.id).where(LedgerEntry.idempotency_key == c.key).exists()).values(status="duplicate"))


def import_statement(data: bytes, filename: str, *, actor: str, own_accounts=()) -> BankStatement:
    """Read, match and store a statement as a preview (``StatementError``: nothing stored)."""
    if len(data) > MAX_BYTES:
        raise StatementError(0, "file", "larger than %(value)s MB", value=MAX_BYTES // (1024 * 1024))
    if not data:
        raise StatementError(0, "file", "empty")
    parsed = parse(data)
    docs = parsed.incoming(own_accounts)
    matches = match(docs)
    keys = [payment_key(d) for d in docs]
    statement = BankStatement(filename=(filename or "statement.txt")[:200], account=(parsed.accounts or [None])[0],
                              date_from=parsed.date_from, date_to=parsed.date_to, documents=len(parsed.documents),
                              status="preview", uploaded_by=actor, uploaded_at=utcnow())
    db.session.add(statement)
    db.session.flush()
    seen: set[str] = set()
    rows = []
    for d, m, key in zip(docs, matches, keys):
        duplicate = key in seen  # twice in this file (posted before: _mark_posted_before)
        seen.add(key)
        rows.append(dict(statement_id=statement.id, line=d.line, number=d.number, doc_date=d.date, amount=d.amount,
                         payer_account=d.payer_account[:34], payer_inn=d.payer_inn[:12], payer_name=d.payer_name[:300],
                         purpose=d.purpose[:500], key=key, match=m.kind, contract_id=m.contract_id,
                         candidates=m.candidates, status="duplicate" if duplicate else "pending"))
    if rows:  # executemany: SQLAlchemy batches it into multi-row INSERTs with one compiled statement
        db.session.execute(insert(BankPayment.__table__), rows)
    _mark_posted_before(statement.id)
    audit.record(actor, "statement.upload", statement, f"{statement.filename}: {len(rows)} incoming payments",
                 object_type="bank_statement")
    return statement


GROUP = case((BankPayment.status != "pending", BankPayment.status),
             (BankPayment.contract_id.is_not(None), "matched"),
             (BankPayment.match.in_(("ambiguous", "name")), "ambiguous"), else_="unmatched")


def summary(statement_id: int) -> dict[str, tuple[int, Decimal]]:
    """{group: (count, sum)}: matched / ambiguous / unmatched while pending, then posted,
    duplicate (already posted), queued, dismissed."""
    minor = type_coerce(BankPayment.__table__.c.amount, BigInteger)
    rows = db.session.execute(select(GROUP, func.count(), func.coalesce(func.sum(minor), 0))
                              .where(BankPayment.statement_id == statement_id).group_by(GROUP)).all()
    return {g: (n, from_minor(s)) for g, n, s in rows}


def _contract_by_number(number: str) -> Contract:
    contract = db.session.scalar(select(Contract).where(Contract.number == (number or "").strip()))
    if contract is None:
        raise NotFound({"contract": "no such contract"})
    return contract


def _payment(payment_id: int, statuses) -> BankPayment:
    p = db.session.get(BankPayment, payment_id)
    if p is None:
        raise NotFound({"payment": "no such payment"})
    if p.status not in statuses:
        raise BillingError({"payment": "already posted" if p.status in ("posted", "duplicate") else f"is {p.status}"})
    return p


def set_contract(payment_id: int, number: str | None, *, actor: str) -> BankPayment:
    """Staff choose (or clear, with no number) the contract of a payment in a preview."""
    p = _payment(payment_id, ("pending",))
    if p.statement.status != "preview":
        raise BillingError({"statement": "already posted"})
    before = p.contract_id
    if number and number.strip():
        p.contract_id, p.match = _contract_by_number(number).id, "staff"
    else:
        p.contract_id, p.match = None, "ambiguous" if p.candidates else "none"
    audit.record(actor, "statement.match", p, f"{p.number} {p.doc_date}", before={"contract_id": before},
                 after={"contract_id": p.contract_id}, object_type="bank_payment")
    return p


def _comment(p) -> str:
    return f"п/п {p.number} {p.doc_date:%d.%m.%Y} {p.payer_name}"[:500]


def post_statement(statement_id: int, *, actor: str) -> dict[str, int]:
    """Post a preview: matched payments to the ledger, the rest to the queue. The statement is
    claimed first (preview → posted in one UPDATE), so a second poster, even in parallel, waits
    for the first and then finds it posted; the ledger keys guard the money on their own too."""
    t = BankStatement.__table__.c
    claimed = db.session.execute(update(BankStatement.__table__).where(t.id == statement_id, t.status == "preview")
                                 .values(status="posted", posted_by=actor, posted_at=utcnow())).rowcount
    if not claimed:
        if db.session.get(BankStatement, statement_id) is None:
            raise NotFound({"statement": "no such statement"})
        raise BillingError({"statement": "already posted"})
    _mark_posted_before(statement_id)  # posted since the preview (another statement, the queue)
    c = BankPayment.__table__.c
    rows = db.session.execute(select(c.id, c.contract_id, c.amount, c.key, c.number, c.doc_date, c.payer_name)
                              .where(c.statement_id == statement_id, c.status == "pending",
                                     c.contract_id.is_not(None))).all()
    created = ledger.post_payments([dict(contract_id=r.contract_id, amount=r.amount, idempotency_key=r.key,
                                         comment=_comment(r)) for r in rows], actor=actor)
    mine = (c.statement_id == statement_id, c.status == "pending")
    # what another poster's same key beat us to between the check and the insert: few, by id
    lost = [r.id for r in rows if r.key not in created]
    for part in _chunks(lost):
        db.session.execute(update(BankPayment.__table__).where(c.id.in_(part)).values(status="duplicate"))
    db.session.execute(update(BankPayment.__table__).where(*mine, c.contract_id.is_not(None)).values(
        status="posted", ledger_entry_id=select(LedgerEntry.id).where(LedgerEntry.idempotency_key == c.key)
        .scalar_subquery()))
    queued = db.session.execute(update(BankPayment.__table__).where(*mine, c.contract_id.is_(None))
                                .values(status="queued")).rowcount
    counts = {"posted": len(created), "duplicate": len(lost), "queued": queued}
    audit.record(actor, "statement.post", None, f"statement {statement_id}: {counts}", after=counts,
                 object_type="bank_statement", object_id=statement_id)
    return counts


def queue(before: int | None = None, limit: int = 50) -> list[BankPayment]:
    """The queue: payments that matched no contract, oldest first (keyset on id)."""
    query = select(BankPayment).where(BankPayment.status == "queued").order_by(BankPayment.id).limit(limit)
    if before is not None:
        query = query.where(BankPayment.id > before)
    return db.session.scalars(query).all()


def assign(payment_id: int, number: str, *, actor: str) -> BankPayment:
    """A queued payment to a contract: posted now (its key keeps it once)."""
    contract = _contract_by_number(number)
    t = BankPayment.__table__.c
    # claim it first: a second staff member assigning the same payment finds it taken
    if not db.session.execute(update(BankPayment.__table__).where(t.id == payment_id, t.status == "queued")
                              .values(status="posted")).rowcount:
        _payment(payment_id, ("queued",))  # raises with the reason
    p = db.session.get(BankPayment, payment_id)
    db.session.refresh(p)
    entry, created = ledger.post(contract.id, "payment", p.amount, actor=actor, comment=_comment(p),
                                 idempotency_key=p.key)
    p.contract_id, p.match, p.ledger_entry_id = contract.id, "staff", entry.id
    p.status = "posted" if created else "duplicate"
    p.resolved_by, p.resolved_at = actor, utcnow()
    audit.record(actor, "statement.assign", p, f"{p.number} {p.doc_date} → {contract.number}",
                 after={"contract_id": contract.id, "entry_id": entry.id}, object_type="bank_payment")
    return p


def dismiss(payment_id: int, reason: str, *, actor: str) -> BankPayment:
    """Not ours to post (a refund, a transfer between our own accounts ...): kept, with the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise BillingError({"reason": "required"})
    if len(reason) > 500:
        raise BillingError({"reason": "at most 500 characters"})
    p = _payment(payment_id, ("queued",))
    p.status, p.reason, p.resolved_by, p.resolved_at = "dismissed", reason, actor, utcnow()
    audit.record(actor, "statement.dismiss", p, f"{p.number} {p.doc_date}: {reason}", object_type="bank_payment")
    return p


def contracts_of(ids) -> dict[int, Contract]:
    """Contracts by id with their subscribers, for a preview's candidates."""
    ids = list({i for i in ids if i})
    out: dict[int, Contract] = {}
    for part in _chunks(ids):
        for contract in db.session.scalars(select(Contract).options(joinedload(Contract.subscriber))
                                           .where(Contract.id.in_(part))):
            out[contract.id] = contract
    return out
