"""Bank statements (1C exchange files): staff upload one, read the preview (matched / ambiguous /
unmatched with counts and sums), correct a match, post; payments that matched nothing wait in
the queue to be assigned or dismissed. Billing decides (portal/billing/statements.py), the
file format is portal/billing/bank_1c.py; this module parses forms and renders.
Admins and managers act (the roles that post payments); viewers read.

    GET  /statements                          recent statements, the upload form
    POST /statements                          upload: parse, match, store the preview
    GET  /statements/<id>                     the preview (or what was posted)
    POST /statements/<id>/post                post it
    POST /statements/payments/<id>/contract   choose (or clear) a payment's contract in a preview
    GET  /statements/queue                    the unmatched queue (?after= keyset)
    POST /statements/payments/<id>/assign     a queued payment to a contract: posted
    POST /statements/payments/<id>/dismiss    a queued payment set aside with a reason
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from ..billing import statements
from ..billing.errors import BillingError
from ..extensions import db
from ..models import BankPayment, BankStatement
from ..web import error_fields, int_arg
from . import bp
from .auth import WRITERS, actor, staff_required

GROUP_TITLES = {"matched": _l("matched"), "ambiguous": _l("ambiguous: choose the contract"),
                "unmatched": _l("unmatched"), "posted": _l("posted to the ledger"), "duplicate": _l("already posted"),
                "queued": _l("in the queue"), "dismissed": _l("dismissed")}
MATCH_TITLES = {"number": _l("contract number in the purpose"), "inn": _l("payer INN"),
                "account": _l("payer account"), "name": _l("payer name (suggestion)"), "staff": _l("chosen by staff"),
                "ambiguous": _l("several contracts"), "none": _l("nothing found")}
# billing's messages, listed so that pybabel puts them in the catalog
MESSAGES = [_l("no such contract"), _l("already posted"), _l("required"), _l("at most 500 characters"),
            # the file's errors (portal.billing.bank_1c.StatementError, messages over %(value)s)
            _l("not a 1C bank exchange file (the first line must be 1CClientBankExchange)"),
            _l("unknown encoding %(value)s (Windows or DOS)"),
            _l("the file is UTF-8, expected windows-1251 (Кодировка=Windows)"), _l("a byte that is not %(value)s"),
            _l("not a date dd.mm.yyyy: %(value)s"), _l("missing in the document"),
            _l("not an amount like 1500.00: %(value)s"), _l("text after the end of the file"),
            _l("the document from line %(value)s is not closed"), _l("not a key=value line"),
            _l("the document is not closed"), _l("missing: the file is cut short"), _l("missing in the header"),
            _l("larger than %(value)s MB"), _l("empty")]
SHOWN = 300  # rows of a group shown on the preview (the counts and sums cover all)


def _parse_error(e: statements.StatementError) -> str:
    message = _(e.message, **e.params)
    if e.line:
        return _("Line %(line)s, %(field)s: %(message)s", line=e.line, field=e.field, message=message)
    return _("%(field)s: %(message)s", field=e.field, message=message)


def _list(error: str | None = None, status: int = 200):
    recent = db.session.scalars(select(BankStatement).order_by(BankStatement.id.desc()).limit(30)).all()
    queued = db.session.scalar(select(func.count()).select_from(BankPayment).where(BankPayment.status == "queued"))
    return render_template("admin/statements.html", recent=recent, queued=queued, error=error,
                           max_mb=statements.MAX_BYTES // (1024 * 1024)), status


@bp.route("/statements")
@staff_required()
def statements_list():
    """Bank statements uploaded, and the upload form."""
    return _list()


@bp.route("/statements", methods=["POST"])
@staff_required(*WRITERS)
def upload_statement():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _list(_("Choose the statement file."), 422)
    data = upload.stream.read(statements.MAX_BYTES + 1)
    try:
        st = statements.import_statement(data, upload.filename, actor=actor())
        db.session.commit()
    except statements.StatementError as e:
        db.session.rollback()
        return _list(_parse_error(e), 422)
    return redirect(url_for("admin.statement", ident=st.id), code=303)


@bp.route("/statements/<int:ident>")
@staff_required()
def statement(ident: int):
    """The preview: each group's count and sum, the rows to check, the post button."""
    st = db.session.get(BankStatement, ident) or abort(404)
    totals = statements.summary(st.id)
    rows = {}
    for group in ("ambiguous", "unmatched", "matched", "duplicate", "queued", "posted", "dismissed"):
        if totals.get(group):
            rows[group] = db.session.scalars(select(BankPayment).where(
                BankPayment.statement_id == st.id, statements.GROUP == group).order_by(BankPayment.id)
                .limit(SHOWN)).all()
    contracts = statements.contracts_of([p.contract_id for ps in rows.values() for p in ps]
                                        + [c for ps in rows.values() for p in ps for c in (p.candidates or [])])
    return render_template("admin/statement.html", st=st, totals=totals, rows=rows, contracts=contracts,
                           titles=GROUP_TITLES, match_titles=MATCH_TITLES, shown=SHOWN)


def _act(action, success, back):
    try:
        result = action()
        db.session.commit()
    except BillingError as e:
        db.session.rollback()
        flash("; ".join(error_fields(e).values()), "error")
        return redirect(back, code=303)
    flash(success(result) if callable(success) else success, "ok")
    return redirect(back, code=303)


@bp.route("/statements/<int:ident>/post", methods=["POST"])
@staff_required(*WRITERS)
def post_statement(ident: int):
    def said(counts):
        return _("Posted %(posted)s payments; %(queued)s to the queue; %(duplicate)s already posted before.",
                 **counts)

    return _act(lambda: statements.post_statement(ident, actor=actor()), said, url_for("admin.statement", ident=ident))


@bp.route("/statements/payments/<int:ident>/contract", methods=["POST"])
@staff_required(*WRITERS)
def statement_payment_contract(ident: int):
    p = db.session.get(BankPayment, ident) or abort(404)
    return _act(lambda: statements.set_contract(p.id, request.form.get("contract", ""), actor=actor()),
                _("Contract chosen."), url_for("admin.statement", ident=p.statement_id) + f"#p{p.id}")


@bp.route("/statements/queue")
@staff_required()
def statement_queue():
    """Payments that matched no contract, oldest first."""
    after = int_arg("after")
    rows = statements.queue(after, limit=50)
    contracts = statements.contracts_of([c for p in rows for c in (p.candidates or [])])
    return render_template("admin/statements_queue.html", rows=rows, contracts=contracts, match_titles=MATCH_TITLES,
                           next_after=rows[-1].id if len(rows) == 50 else None)


@bp.route("/statements/payments/<int:ident>/assign", methods=["POST"])
@staff_required(*WRITERS)
def assign_statement_payment(ident: int):
    return _act(lambda: statements.assign(ident, request.form.get("contract", ""), actor=actor()),
                lambda p: _("Payment posted to contract %(number)s.", number=p.contract.number),
                url_for("admin.statement_queue"))


@bp.route("/statements/payments/<int:ident>/dismiss", methods=["POST"])
@staff_required(*WRITERS)
def dismiss_statement_payment(ident: int):
    return _act(lambda: statements.dismiss(ident, request.form.get("reason", ""), actor=actor()),
                _("Payment dismissed."), url_for("admin.statement_queue"))
