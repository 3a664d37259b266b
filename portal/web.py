"""What the admin and the cabinet pages share: page-or-fragment rendering, reading list
arguments and forms, and showing billing errors in the user's language."""
from __future__ import annotations

import json
import re

from flask import make_response, render_template, request
from flask_babel import gettext, lazy_gettext as _l

from .billing.errors import BillingError


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def page_or_fragment(page_template: str, fragment_template: str, **context):
    """The whole page, or only its fragment (table rows, a panel) for an HTMX request."""
    return render_template(fragment_template if is_htmx() else page_template, **context)


def with_toast(body, message: str, status: int = 200, **headers):
    """An HTMX answer that also shows a toast (base.html listens for the ``toast`` event)."""
    response = make_response(body, status)
    # HTTP headers are latin-1: a Russian toast travels as JSON \u escapes (htmx decodes them)
    response.headers["HX-Trigger"] = json.dumps({"toast": str(message)})
    response.headers.update(headers)
    return response


def int_arg(name: str, source=None) -> int | None:
    value = (source if source is not None else request.args).get(name, "")
    value = value.strip() if isinstance(value, str) else value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def form_int(name: str):
    """An id from a form: int when it is digits, the raw text otherwise (billing names the field)."""
    raw = request.form.get(name, "").strip()
    if raw == "":
        return None
    return int(raw) if raw.isdigit() else raw


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
KNOWN = [_l(m) for m in (
    "required", "already taken", "not found", "no such agent", "no such contract", "no such extra field",
    "no such service", "no such subscriber", "no such tariff", "unknown service id", "must be an integer",
    "must be negative", "must not be negative", "must be true or false", "true or false", "too large",
    "not a decimal number", "at most two decimal places", "at most 500 characters", "at least 8 characters",
    "4-128 characters", "1-64 latin letters, digits, _ . @ -", "1-32 letters, digits, / . _ -",
    "a date", "a date not before starts_on", "a date not before the start", "not an e-mail address",
    "a list of phone numbers (digits, +, spaces, brackets, dashes)", "a list of service ids",
    "a list of tariff ids", "a multi-tariff cannot be the main tariff", "each must be an existing multi-tariff",
    "active or suspended, on a service that has not ended", "already disabled",
    "already used for a different payment", "an account needs a tariff to be activated",
    "lowercase latin letters, digits and _, starting with a letter", "not a valid regular expression",
    "manager or subscriber (the balance block is set by the balance rule)",
    "manager or subscriber; a balance block is lifted by a payment", "required with a cabinet password",
    "required with a platform", "the account is disabled", "the account's tariffs do not offer this service",
    "the service has ended already",
)]


def translate_message(message: str) -> str:
    for pattern, template in _PATTERNS:
        m = pattern.match(message)
        if m:
            return str(template) % {"n": m.group(1)}
    return gettext(message)


def error_fields(error: BillingError) -> dict[str, str]:
    """field -> translated message, for a form to show beside each field."""
    return {field: translate_message(str(msg)) for field, msg in error.fields.items()}
