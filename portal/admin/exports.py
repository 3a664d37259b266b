"""Export of any staff list, as CSV or XLSX, with the search, filters and sort on screen.

Rows are read a keyset page at a time (``lists.pages``) and written as they come: the CSV is
streamed to the browser; the XLSX is written row by row to a temporary file by XlsxWriter's
constant-memory mode, then sent. Memory stays flat at a million rows either way. Money is a
number (not text), times are in the operator's zone. Text is written as text: in the CSV one
that starts like a formula gets a leading apostrophe, the XLSX writes it as a string cell."""
from __future__ import annotations

import csv
import io
import os
import tempfile
from datetime import date, datetime
from decimal import Decimal

from flask import Response, abort, after_this_request, send_file, stream_with_context

from ..billing import audit, clock
from ..extensions import db
from . import bp
from .auth import actor, staff_required
from .lists import ACCOUNTS, AUDIT, CONTRACTS, PAYMENTS, SUBSCRIBERS, current_args, pages

SPECS = {s.endpoint.split(".")[1]: s for s in (SUBSCRIBERS, CONTRACTS, ACCOUNTS, PAYMENTS, AUDIT)}


def _plain(value):
    """A cell: local time for moments, numbers for money, text otherwise."""
    if isinstance(value, datetime):
        return value.astimezone(clock.tz()).replace(tzinfo=None)
    return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, str):
        # a text a spreadsheet would run as a formula (a name typed as =HYPERLINK(...)) is kept
        # text by a leading apostrophe (OWASP's CSV injection advice); numbers are not text here
        return "'" + value if value.startswith(_FORMULA_START) else value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _rows(spec, args):
    for row in pages(spec, args):
        yield spec.export_row(row)


@bp.route("/<name>/export.<fmt>")
@staff_required()
def export_list(name: str, fmt: str):
    spec = SPECS.get(name)
    if spec is None or spec.export_row is None or fmt not in ("csv", "xlsx"):
        abort(404)
    args = current_args(spec)
    header = [str(h) for h in spec.export_header]
    filename = f"{name}-{clock.today():%Y-%m-%d}.{fmt}"
    audit.record(actor(), "list.export", None, f"{name} as {fmt}",
                 after={k: v for k, v in args.items() if v}, object_type="system")
    db.session.commit()
    if fmt == "csv":
        def generate():
            out = io.StringIO()
            writer = csv.writer(out)
            out.write("\ufeff")  # a BOM: spreadsheet programs then read UTF-8
            writer.writerow(header)
            for n, values in enumerate(_rows(spec, args), 1):
                writer.writerow([_csv_text(v) for v in values])
                if n % 500 == 0:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
            yield out.getvalue()
            db.session.rollback()

        return Response(stream_with_context(generate()), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return _xlsx(spec, args, header, filename)


def _xlsx(spec, args, header: list[str], filename: str):
    import xlsxwriter

    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    book = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": tempfile.gettempdir()})
    sheet = book.add_worksheet(spec.endpoint.split(".")[1][:31])
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": "#,##0.00"})
    moment = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, header, bold)
    for r, values in enumerate(_rows(spec, args), 1):
        for c, value in enumerate(values):
            value = _plain(value)
            if isinstance(value, Decimal):
                sheet.write_number(r, c, float(value), money)
            elif isinstance(value, datetime):
                sheet.write_datetime(r, c, value, moment)
            elif value is None:
                continue
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                sheet.write_number(r, c, value)
            else:
                sheet.write_string(r, c, str(value))
    book.close()
    db.session.rollback()

    @after_this_request
    def _remove(response):
        response.call_on_close(lambda: os.path.exists(path) and os.remove(path))
        return response

    return send_file(path, as_attachment=True, download_name=filename,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
