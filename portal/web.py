"""What the admin and the cabinet pages share: page-or-fragment rendering, reading list
arguments and forms, and showing billing errors in the user's language."""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import flask_babel
from babel import dates as babel_dates
from babel.numbers import get_currency_symbol
from flask import current_app, make_response, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from .billing.errors import BillingError
from .billing.inputs import id_or_raw

# -- money and moments as the page's language writes them ---------------------------------------
# Every page, fragment and message formats through these (the Jinja filters `money`,
# `local_date`, `local_time`): Babel's CLDR data decides separators, the currency sign and
# the date order, so "1 234,50 ₽" and "03.12.2026" in Russian, "RUB1,234.50" and "12/3/26" in
# English; nothing appends a sign or calls strftime by hand.

def billing_currency() -> str:
    """The operator's currency (BILLING_CURRENCY, ISO 4217): every amount billing holds is in it."""
    return current_app.config.get("BILLING_CURRENCY") or "RUB"


def currency_symbol(code: str | None = None) -> str:
    """The currency's sign in the page's language ("₽" in Russian, "RUB" in English), for field
    labels ("Amount, ₽") where no amount is shown yet."""
    return get_currency_symbol(code or billing_currency(), locale=flask_babel.get_locale())


def money(amount, code: str | None = None) -> str:
    """An amount with its currency (the operator's, or ``code``: a seller's own), '' for none.
    A text that is not a number (a platform's raw value) is shown as it came."""
    if amount is None or amount == "":
        return ""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    code = code or billing_currency()
    # (the amount as written, not its value: 0 and -0, 1E+3 and 1000 are kept apart)
    return _memo(("money", flask_babel.get_locale(), code, str(value)),
                 lambda: flask_babel.format_currency(value, code))


def local_date(day, format: str = "short") -> str:
    """A day ("03.12.2026"); a moment's day in the operator's zone (BILLING_TZ); '' for none."""
    if day is None or day == "":
        return ""
    if isinstance(day, str):
        day = datetime.fromisoformat(day) if len(day) > 10 else date.fromisoformat(day)
    # (Babel formats a moment's day only: the day in the operator's zone, as flask_babel rebases it)
    local = flask_babel.to_user_timezone(day).date() if isinstance(day, datetime) else day
    return _memo(("date", flask_babel.get_locale(), format, local), lambda: flask_babel.format_date(day, format))


def local_time(moment, precision: str = "minutes") -> str:
    """A moment (UTC, or its ISO text) in the operator's zone (Flask-Babel's timezone is
    BILLING_TZ): "03.12.2026, 15:52"; ``precision`` "seconds" adds them, "date" drops the time.
    (A strftime pattern, as pages passed before, picks the precision it asked for.)"""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if precision.startswith("%"):
        precision = "seconds" if "%S" in precision else "minutes" if "%H" in precision else "date"
    if precision == "date":
        return flask_babel.format_date(moment, "short")
    if precision == "seconds":
        # the language's own way to join a date and a time ("{1}, {0}"), with the seconds
        joined = flask_babel.get_locale().datetime_formats["short"]
        return str(joined).replace("{1}", flask_babel.format_date(moment, "short")) \
            .replace("{0}", flask_babel.format_time(moment, "medium"))
    return _short_datetime(moment)


# L2 (issue 16): a list page formats 50-150 amounts and moments, and through Babel each cost
# 20-25 us (the locale and zone looked up, the pattern found, CLDR's data read per field): a
# third of a 50-row page's Python. The text of an amount depends on the language, the currency
# and the amount only; a day's on the language and the day; a short time's on the language and
# the hour and minute. So each is formatted by Babel once per process and then reused.
_MEMO_MAX = 20_000
_MEMO: dict = {}


def _memo(key, make):
    text = _MEMO.get(key)
    if text is None:
        if len(_MEMO) >= _MEMO_MAX:  # (a bound, not an LRU: refilled at Babel's pace)
            _MEMO.clear()
        text = _MEMO[key] = make()
    return text


_TIME_FIELDS = re.compile(r"%\((\w+)\)s")


def _short_datetime(moment) -> str:
    """``flask_babel.format_datetime(moment, "short")``, composed as Babel composes it (the
    language's "{1}, {0}" joining its short date and short time of the moment in the operator's
    zone), each part memoized: the date by the day, the time by the hour and minute when the
    language's short time pattern shows nothing else (hours, minutes, AM/PM; else Babel each
    time). tests/test_locale.py compares it with flask_babel's own over days, hours and zones."""
    if not isinstance(moment, datetime):  # (a day, a timestamp: as Babel takes them)
        return flask_babel.format_datetime(moment, "short")
    locale = flask_babel.get_locale()
    local = flask_babel.to_user_timezone(moment)
    joined, by_minute = _memo(("datetime short", locale), lambda: _short_parts(locale))
    time_key = ("time short", locale, local.hour, local.minute) if by_minute else None
    time_text = _memo(time_key, lambda: babel_dates.format_time(local, "short", locale=locale)) if time_key \
        else babel_dates.format_time(local, "short", locale=locale)
    date_text = _memo(("datetime's date", locale, local.date()),
                      lambda: babel_dates.format_date(local, "short", locale=locale))
    return joined.replace("{0}", time_text).replace("{1}", date_text)


def _short_parts(locale):
    """(the language's short date-and-time joiner, whether its short time shows only the hour,
    minute and AM/PM)"""
    fields = _TIME_FIELDS.findall(babel_dates.get_time_format("short", locale=locale).format)
    return (str(babel_dates.get_datetime_format("short", locale=locale)).replace("'", ""),
            all(set(f) <= set("HhKkma") for f in fields))


_PLATFORM_MOMENT = re.compile(r"\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d)?)?")


def platform_moment(value) -> str | None:
    """A platform's own day or moment ("2026-04-11", "2026-04-11 13:05:00": its wall clock, no
    zone) as the page's language writes it, shown as the platform has it; None for any other text."""
    if not isinstance(value, str) or not _PLATFORM_MOMENT.fullmatch(value):
        return None
    try:
        if len(value) == 10:
            return flask_babel.format_date(date.fromisoformat(value), "short")
        return flask_babel.format_datetime(datetime.fromisoformat(value), "short", rebase=False)
    except ValueError:  # "2026-02-30": not a day at all
        return None


# Notes the platforms store in English for staff (BILLmanager's tasks and a service's wait: the
# seller's balance against what an order needs), in the reader's language with the amounts
# through `money` (in the seller's currency, as the note names it).
_AMOUNT = r"(-?\d+(?:\.\d+)?)"
_NOTES = [
    (re.compile(rf"^(?:(?P<name>.+?): )?balance {_AMOUNT} ?(?P<cur>[A-Z]{{3}})?, "
                rf"needs {_AMOUNT} \+ minimum {_AMOUNT}$"),
     _l("balance %(a1)s, needs %(a2)s plus the minimum %(a3)s kept")),
    (re.compile(rf"^Balance {_AMOUNT} ?(?P<cur>[A-Z]{{3}})? is below the minimum {_AMOUNT}\.$"),
     _l("Balance %(a1)s is below the minimum %(a2)s.")),
    (re.compile(r"^(?:(?P<name>.+?): )?the balance cannot be read: (?P<n1>.+)$"),
     _l("the balance cannot be read: %(n1)s")),
    (re.compile(r"^Top up the selling account of handler «(?P<n1>.+)»$"),
     _l("Top up the selling account of handler «%(n1)s»")),
    (re.compile(r"^Order of service #(?P<n1>\d+) waits: the seller does not answer \(retried automatically\)$"),
     _l("Order of service #%(n1)s waits: the seller does not answer (retried automatically)")),
    (re.compile(r"^Order of service #(?P<n1>\d+) waits: "
                r"the seller's balance cannot be read \(retried automatically\)$"),
     _l("Order of service #%(n1)s waits: the seller's balance cannot be read (retried automatically)")),
    (re.compile(r"^Order of service #(?P<n1>\d+) waits: top up the selling account$"),
     _l("Order of service #%(n1)s waits: top up the selling account")),
    (re.compile(r"^Check the order of service #(?P<n1>\d+) on the seller$"),
     _l("Check the order of service #%(n1)s on the seller")),
]


def platform_note(text: str | None) -> str:
    """A platform's stored note in words and amounts the reader's language writes (each part of
    a "; "-joined note); a part no pattern knows (the seller's own error text) as it came."""
    parts = []
    for part in (text or "").split("; "):
        for pattern, template in _NOTES:
            m = pattern.match(part)
            if m:
                named = m.groupdict()
                amounts = [g for i, g in enumerate(m.groups(), 1) if i not in
                           {pattern.groupindex[k] for k in named}]
                values = {f"a{i}": money(v, named.get("cur")) for i, v in enumerate(amounts, 1)}
                values.update({k: v for k, v in named.items() if k.startswith("n")})
                part = (f"{named['name']}: " if named.get("name") else "") + str(template) % values
                break
        parts.append(part)
    return "; ".join(parts)


def id_link(endpoint: str, key: str):
    """``url_for(endpoint, <key>=id)`` as a function of the id, for a page that links every row
    (L2, issue 16: a list page made 150 url_for calls, 5-8 us each): the URL is built once with
    a marker id, and each id is put in the marker's place, as url_for writes an integer."""
    marker = "9876543210123"
    head, found, tail = url_for(endpoint, **{key: int(marker)}).partition(marker)
    if not found or marker in tail:  # (not a plain path of the id: url_for each time)
        return lambda value: url_for(endpoint, **{key: value})
    return lambda value: f"{head}{int(value)}{tail}"


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def page_or_fragment(page_template: str, fragment_template: str, **context):
    """The whole page, or only its fragment (table rows, a panel) for an HTMX request."""
    return render_template(fragment_template if is_htmx() else page_template, **context)


def with_toast(body, message: str, status: int = 200, events: tuple[str, ...] = (), **headers):
    """An HTMX answer that also shows a toast (base.html listens for the ``toast`` event) and
    fires ``events`` (e.g. a list that reloads itself on one)."""
    response = make_response(body, status)
    # HTTP headers are latin-1: a Russian toast travels as JSON \u escapes (htmx decodes them)
    response.headers["HX-Trigger"] = json.dumps({"toast": str(message), **{e: True for e in events}})
    response.headers.update(headers)
    return response


def int_arg(name: str, source=None) -> int | None:
    """An id from the query (``?before=``): None when it is not one (1 .. 2**63-1)."""
    value = id_or_raw((source if source is not None else request.args).get(name, ""))
    return value if isinstance(value, int) else None


def form_int(name: str):
    """An id from a form: int when it is one (1 .. 2**63-1, billing/inputs.py), the raw text
    otherwise (billing names the field)."""
    raw = request.form.get(name, "").strip()
    if raw == "":
        return None
    return id_or_raw(raw)


def form_ids(name: str) -> list:
    """A list of ids from a multi-select or checkboxes: ints, or raw texts billing refuses."""
    return [id_or_raw(v.strip()) for v in request.form.getlist(name) if v.strip()]


def form_text(name: str) -> str | None:
    raw = request.form.get(name, "").strip()
    return raw or None


# Billing speaks English to API clients; pages show the same messages translated. Messages
# with a number or a name in them are matched by pattern, the number carried over.
_PATTERNS = [
    (re.compile(r"^text up to (\d+) characters$"), _l("text up to %(n)s characters")),
    (re.compile(r"^must be one of: (.+)$"), _l("must be one of: %(n)s")),
    (re.compile(r"^cannot activate an account that is (\w+)$"), _l("cannot activate an account that is %(n)s")),
    (re.compile(r"^cannot block an account that is (\w+)$"), _l("cannot block an account that is %(n)s")),
    (re.compile(r"^already blocked by (\w+)$"), _l("already blocked by %(n)s")),
    (re.compile(r"^the account is not blocked by (\w+)$"), _l("the account is not blocked by %(n)s")),
    (re.compile(r"^must be one of (.+)$"), _l("must be one of: %(n)s")),
    (re.compile(r"^does not match (.+)$"), _l("does not match %(n)s")),
]
# The fixed messages billing uses, listed so that pybabel puts them in the catalog.
KNOWN = [
    _l("required"),
    _l("already taken"),
    _l("not found"),
    _l("no such agent"),
    _l("no such contract"),
    _l("no such extra field"),
    _l("no such service"),
    _l("no such subscriber"),
    _l("no such tariff"),
    _l("unknown service id"),
    _l("must be an integer"),
    _l("must be negative"),
    _l("must not be negative"),
    _l("must be true or false"),
    _l("true or false"),
    _l("too large"),
    _l("not a decimal number"),
    _l("at most two decimal places"),
    _l("at most 500 characters"),
    _l("at least 8 characters"),
    _l("4-128 characters"),
    _l("1-64 latin letters, digits, _ . @ -"),
    _l("1-32 letters, digits, / . _ -"),
    _l("a date"),
    _l("a date not before starts_on"),
    _l("a date not before the start"),
    _l("not an e-mail address"),
    _l("a list of phone numbers (digits, +, spaces, brackets, dashes)"),
    _l("a list of service ids"),
    _l("a list of tariff ids"),
    _l("a multi-tariff cannot be the main tariff"),
    _l("each must be an existing multi-tariff"),
    _l("active or suspended, on a service that has not ended"),
    _l("already disabled"),
    _l("already used for a different payment"),
    _l("an account needs a tariff to be activated"),
    _l("lowercase latin letters, digits and _, starting with a letter"),
    _l("not a valid regular expression"),
    _l("manager or subscriber (the balance block is set by the balance rule)"),
    _l("manager or subscriber; a balance block is lifted by a payment"),
    _l("required with a cabinet password"),
    _l("required with a platform"),
    _l("the account is disabled"),
    _l("the account's tariffs do not offer this service"),
    _l("the service has ended already"),
    _l("must be positive"),
    _l("must not be zero"),
]

# State and reason names as pages show them (badges, filters): one place for their wording.
STATE_TITLES = {
    "inactive": _l("inactive"), "active": _l("active"), "blocked": _l("blocked"), "disabled": _l("disabled"),
    "suspended": _l("suspended"), "ended": _l("ended"),
    "ok": _l("in sync"), "pending": _l("pending"), "retry": _l("retrying"), "dead": _l("failed"),
    "conflict": _l("conflict: staff decide"),
    "queued": _l("queued"), "started": _l("running"), "finished": _l("finished"), "failed": _l("failed"),
    "scheduled": _l("scheduled"), "deferred": _l("deferred"), "stopped": _l("stopped"), "canceled": _l("canceled"),
}
REASON_TITLES = {"balance": _l("balance"), "manager": _l("a manager"), "subscriber": _l("the subscriber")}


# What a ledger entry is, by the change that posted it (LedgerEntry.reason): one wording for the
# staff ledger, the cabinet and exports.
_CHARGE_TITLES = {
    "service.assign": _l("Charge for a new service"), "account.activate": _l("Charge on activation"),
    "account.unblock": _l("Charge on unblocking"), "service.resume": _l("Charge on resuming a service"),
    "account.update": _l("Charge for a tariff change"), "service.expiry": _l("Charge for a longer service"),
}
_REFUND_TITLES = {
    "account.block": _l("Refund for a block"), "account.disable": _l("Refund for disabling the account"),
    "service.end": _l("Refund for an ended service"), "service.suspend": _l("Refund for a suspended service"),
    "service.expiry": _l("Refund for a shortened service"), "account.update": _l("Refund for a tariff change"),
    "service.assign": _l("Refund for a replaced service"),
}


def _promised_title(line) -> str | None:
    """A promised payment's entries (billing.promised: the credit names its last day)."""
    from flask_babel import format_date

    from .billing import promised

    kind = promised.entry_kind(line.key)
    if kind == promised.RETURN_KEY:
        return str(_l("Promised payment returned"))
    if kind == promised.FEE_KEY:
        return str(_l("Fee for a promised payment"))
    if kind == promised.CREDIT_KEY:
        until = promised.entry_until(line.comment)
        return str(_l("Promised payment until %(day)s", day=format_date(until, "short"))) if until \
            else str(_l("Promised payment"))
    return None


# Where a payment came from (models.ledger PAYMENT_SOURCES), as staff read it.
PAYMENT_SOURCE_TITLES = {
    "cash": _l("cash desk"), "statement": _l("bank statement"), "agent": _l("payment agent"),
    "online": _l("online"), "api": _l("API v1"),
}


def source_title(source: str | None) -> str:
    return str(PAYMENT_SOURCE_TITLES.get(source, source or "—"))


def entry_title(line) -> str:
    """What a ledger line (billing.ledger.LedgerLine) is, in words: a payment, the monthly fee,
    a refund for a block, for disabling, ... (entries from before reasons were kept read as a
    plain charge or refund)."""
    if line.kind == "payment":
        return str(_l("Payment"))
    promised = _promised_title(line)
    if promised:
        return promised
    if line.reason == "storno":  # (its comment is the staff member's reason)
        return str(_l("Payment cancelled (storno)"))
    if line.kind == "correction":
        return str(_l("Correction"))
    if line.kind == "charge" and (line.key or "").startswith("upsale:"):
        return str(_l("Bought in the TV app"))
    if line.kind == "charge":
        if line.by_run:
            return str(_l("Monthly fee"))
        return str(_CHARGE_TITLES.get(line.reason or "", _l("Charge")))
    return str(_REFUND_TITLES.get(line.reason or "", _l("Refund")))


# Audit actions as staff read them (the audit log, an account's history); the code stays on hover.
ACTION_TITLES = {
    "account.create": _l("Account created"), "account.update": _l("Account changed"),
    "account.activate": _l("Account activated"), "account.block": _l("Account blocked"),
    "account.unblock": _l("Account unblocked"), "account.disable": _l("Account disabled"),
    "service.assign": _l("Service assigned"), "service.end": _l("Service ended"),
    "service.suspend": _l("Service suspended"), "service.resume": _l("Service resumed"),
    "service.expiry": _l("Service's last day set"), "service.expired": _l("Service ended on its last day"),
    "service.create": _l("Catalog service created"), "service.update": _l("Catalog service changed"),
    "contract.create": _l("Contract created"), "contract.update": _l("Contract changed"),
    "contract.balance": _l("Balance moved"), "ledger.payment": _l("Payment"),
    "ledger.correction": _l("Correction"), "subscriber.create": _l("Subscriber created"),
    "subscriber.update": _l("Subscriber card changed"), "subscriber.cabinet_password": _l("Cabinet password set"),
    "tariff.create": _l("Tariff created"), "tariff.update": _l("Tariff changed"),
    "agent.create": _l("Agent created"), "agent.update": _l("Agent changed"),
    "billing.charge_run": _l("Charge run"), "platform.call": _l("Platform call"),
    "platform.sync_request": _l("Sync requested"), "platform.retry_dead": _l("Failed sync retried"),
    "platform.connection.create": _l("Platform connection created"),
    "platform.connection.update": _l("Platform connection changed"),
    "staff.create": _l("Staff member created"), "staff.update": _l("Staff member changed"),
    "staff.password": _l("Staff password set"), "staff.disable": _l("Staff member disabled"),
    "staff.enable": _l("Staff member enabled"), "staff.end_sessions": _l("Staff sessions ended"),
    "api_token.create": _l("API token created"), "api_token.revoke": _l("API token revoked"),
    "job.retry": _l("Job retried"), "job.reconcile_all": _l("Full reconcile started"),
    "list.export": _l("List exported"),
    "service.expire": _l("Services ended on their last day"),
    "ledger.charge": _l("Charge"), "ledger.refund": _l("Refund"),
    "extra_field.create": _l("Extra field created"), "extra_field.update": _l("Extra field changed"),
    "payment_agent.create": _l("Payment agent created"), "payment_agent.update": _l("Payment agent changed"),
    "promised.take": _l("Promised payment given"), "promised.return": _l("Promised payment returned"),
    "promised.rules": _l("Promised payment rules changed"),
    "freeze.start": _l("Account frozen"), "freeze.end": _l("Freeze ended"),
    "freeze.rules": _l("Freeze rules changed"), "grace.rules": _l("Grace changed"),
    "contract.holds": _l("Grace or do not block until changed"),
    "task.open": _l("Task opened"), "task.close": _l("Task closed"),
    "stalker.account_add": _l("Stalker user added to billing"), "stalker.account_delete": _l("Stalker user deleted"),
    "stalker.link": _l("Account linked to a Stalker user"), "stalker.change_login": _l("Stalker login changed"),
    "stalker.stb_register": _l("STB registered"), "stalker.stb_remove": _l("STB removed"),
    "stalker.tariff_import": _l("Stalker plan imported"), "stalker.tariff_resync": _l("Stalker plan re-synced"),
    "stalker.channels_import": _l("Stalker channels imported"), "stalker.console": _l("Stalker API call by staff"),
    "smotreshka.check": _l("«Смотрёшка» connection checked"), "smotreshka.import": _l("«Смотрёшка» catalog imported"),
    "smotreshka.drift": _l("«Смотрёшка» differences checked"), "smotreshka.push": _l("Billing's TV state pushed"),
    "smotreshka.resync": _l("«Смотрёшка» re-sync requested"),
    "intercom.lookup": _l("Intercom profile looked up"), "intercom.check": _l("Intercom connection checked"),
    "intercom.profiles": _l("Intercom profiles checked"),
    "billmanager.handler.create": _l("BILLmanager handler created"),
    "billmanager.handler.update": _l("BILLmanager handler changed"),
    "billmanager.tariff.import": _l("Hosting tariff imported"),
    "billmanager.tariff.update": _l("Hosting tariff changed"),
    "billmanager.tariff.sync": _l("Hosting tariff re-read from the seller"),
    "billmanager.tariff.handlers": _l("Hosting tariff's handlers changed"),
    "billmanager.order": _l("Hosting ordered"), "billmanager.order.restart": _l("Hosting order restarted"),
    "billmanager.ordered": _l("Hosting order placed with the seller"), "billmanager.renewed": _l("Hosting renewed"),
    "data_centers.create": _l("Data center created"), "data_centers.update": _l("Data center changed"),
    "data_centers.delete": _l("Data center deleted"), "departments.create": _l("Department created"),
    "departments.update": _l("Department changed"), "departments.delete": _l("Department deleted"),
    "online_shop.save": _l("Online payment settings saved"),
    "online_payment.mismatch": _l("Online payment does not match"),
    "online_payment.expired": _l("Online payment expired"),
    "forecast.settings": _l("Low-balance warning settings changed"),
    "notification_channel.save": _l("Notification channel saved"),
    "notification_preferences.save": _l("Notification preferences saved"),
    "notification_preferences.telegram_linked": _l("Telegram linked"),
    "notification_preferences.telegram_unlinked": _l("Telegram unlinked"),
    "statement.upload": _l("Bank statement uploaded"), "statement.match": _l("Statement payment matched to a contract"),
    "statement.assign": _l("Statement payment assigned to a contract"),
    "statement.post": _l("Statement payments posted"), "statement.dismiss": _l("Statement payment dismissed"),
    "notification_template.save": _l("Message template changed"),
    "notification_template.reset": _l("Message template reset to default"),
    "bulk_message.send": _l("Bulk message sent"),
}
PLATFORM_TITLES = {"smotreshka": "«Смотрёшка»", "stalker": "Stalker", "intercom": "«Интерсвязь»",
                   "billmanager": "BILLmanager", "webhook": "webhook", "yookassa": "ЮKassa"}


def action_title(action: str) -> str:
    """An audit action in words (the code itself for one without a title yet)."""
    title = ACTION_TITLES.get(action)
    return str(title) if title is not None else action


_BLOCK_SUMMARY = re.compile(r"^(?:un)?blocked: (\w+)$")
_BLOCKED_BY = {"balance": _l("by balance"), "manager": _l("by a manager"), "subscriber": _l("by the subscriber")}


def audit_summary(entry) -> str:
    """An audit entry's summary for staff: a ledger entry's amount through ``money`` (billing
    writes "payment 1500.00"), a block's reason in words; other summaries as billing wrote them
    (names, logins, platform answers)."""
    after = entry.after if isinstance(entry.after, dict) else {}
    before = entry.before if isinstance(entry.before, dict) else {}
    if entry.action.startswith("ledger.") and after.get("amount") is not None:
        return " · ".join(t for t in (money(after["amount"]), after.get("comment")) if t)
    if entry.action in ("account.block", "account.unblock"):
        m = _BLOCK_SUMMARY.match(entry.summary or "")
        reason = m.group(1) if m else (after.get("reason") or before.get("reason"))
        if reason in _BLOCKED_BY:
            return str(_BLOCKED_BY[reason])
    return entry.summary or ""


def account_status_text(account) -> str:
    """An account's status as its badge reads, with why it is blocked ("blocked (by balance)")."""
    text = state_title(account.status)
    if account.reasons:
        text += " (" + ", ".join(str(_BLOCKED_BY.get(r, r)) for r in account.reasons) + ")"
    return text


def once_per_request(title):
    """``title`` (a code -> words function) remembered per code for the rest of the request: an
    export of a million rows repeats a few codes, in one language."""
    def remembered(code):
        from flask import g

        cache = g.setdefault("titles_said", {}).setdefault(title, {})
        if code not in cache:
            cache[code] = title(code)
        return cache[code]
    return remembered


def remember_staff_names(actors) -> None:
    """The names ``actor_title`` shows for the staff among ``actors``, read in one statement (L2:
    a page of the audit log named up to 50 staff, one statement each)."""
    from flask import g

    from .extensions import db
    from .models import StaffUser

    names = g.setdefault("staff_names", {})
    logins = {who for kind, _sep, who in ((actor or "").partition(":") for actor in actors)
              if kind == "staff" and who and who not in names}
    if logins:
        found = dict(db.session.execute(db.select(StaffUser.login, StaffUser.full_name)
                                        .where(StaffUser.login.in_(logins))).all())
        names.update({who: (found[who] or who) if who in found else who for who in logins})


def actor_title(actor: str | None) -> str:
    """Who did it, in words: a staff member by name, a platform, the API, the system."""
    from flask import g

    from .models import StaffUser

    kind, _sep, who = (actor or "").partition(":")
    if kind == "staff" and who:
        names = g.setdefault("staff_names", {})
        if who not in names:
            from .extensions import db

            user = db.session.scalar(db.select(StaffUser).filter_by(login=who))
            names[who] = (user.full_name or user.login) if user is not None else who
        return names[who]
    if kind == "platform":
        return str(_l("platform %(name)s", name=PLATFORM_TITLES.get(who, who)))
    if kind == "api":
        return str(_l("API: %(name)s", name=who))
    if kind == "cabinet":
        return str(_l("subscriber %(login)s (cabinet)", login=who))
    if kind == "agent":  # a payment agent over the provider protocol (billing.agent_payments)
        return str(_l("payment agent %(name)s", name=who))
    if actor == "system":
        return str(_l("billing (automatic)"))
    return actor or ""


def _shown(value) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def redacted(state):
    """A sync state's dict without its encrypted fields (``*_enc``): staff need not see them."""
    if not isinstance(state, dict):
        return state
    return {k: ("•••" if k.endswith("_enc") and v else v) for k, v in state.items()}


def state_diff(desired, actual) -> list[tuple[str, str, str, bool]]:
    """Billing's wish beside what the platform has, field by field: (field, wanted, found,
    differs), billing's fields first; encrypted fields left out."""
    desired, actual = desired if isinstance(desired, dict) else {}, actual if isinstance(actual, dict) else {}
    keys = [k for k in desired if not k.endswith("_enc")]
    keys += [k for k in actual if k not in desired and not k.endswith("_enc")]
    rows = []
    for key in keys:
        want, have = _shown(desired.get(key)), _shown(actual.get(key))
        rows.append((key, want if key in desired else "", have if key in actual else "",
                     key in desired and key in actual and want != have))
    return rows


def state_title(state: str) -> str:
    return str(STATE_TITLES.get(state, state))


def translate_message(message: str) -> str:
    for pattern, template in _PATTERNS:
        m = pattern.match(message)
        if m:
            value = m.group(1)
            return str(template) % {"n": REASON_TITLES.get(value) or STATE_TITLES.get(value) or value}
    return gettext(message)


def error_fields(error: BillingError) -> dict[str, str]:
    """field -> translated message, for a form to show beside each field."""
    return {field: translate_message(str(msg)) for field, msg in error.fields.items()}
