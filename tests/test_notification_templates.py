"""Message templates (issue 19): every event renders on every channel in both languages with
the figures Babel writes for that language; the sandbox keeps a template away from Python's
insides; admins edit, preview on a contract's data and reset over HTTP."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from babel.units import format_unit
from jinja2.exceptions import SecurityError

from portal.billing import notices
from portal.extensions import db
from portal.models import NOTICE_EVENTS, AuditEntry, NotificationTemplate
from portal.notifications import templates
from tests.builders import gen_contract, gen_subscriber
from tests.helpers import HX, field_error, post, staff_in_english

MSK = ZoneInfo("Europe/Moscow")

# one notice's data per event, as billing writes it (amounts as Decimal strings, days ISO)
DATA = {
    "low_balance": {"days_left": 5, "runs_out_on": "2026-12-08", "suggested_payment": "1234.50",
                    "threshold": 5},
    "blocked": {"blocked_on": "2026-12-03", "amount_to_unblock": "4321.09"},
    "payment_received": {"amount": "1500.00", "paid_at": "2026-12-03T21:30:00+00:00", "source": "online"},
    "promised_expiring": {"amount": "777.70", "until": "2026-12-04", "last_day": "2026-12-03"},
    "service_assigned": {"service_name": "Интернет 100", "account_login": "petrov", "price": "650.00",
                         "period": "month", "starts_on": "2026-12-01"},
    "service_ended": {"service_name": "Кинозал", "account_login": "petrov", "ended_on": "2026-11-30"},
    "service_bought": {"service_name": "Фильм «Начало»", "account_login": "petrov", "price": "199.00",
                       "platform": "smotreshka"},
    "freeze_started": {"account_login": "petrov", "frozen_until": "2027-01-15", "fee": "50.00"},
    "freeze_ended": {"account_login": "petrov", "ended_on": "2027-01-16"},
    "bulk": {"subject": "Работы в сети", "text": "{{ subscriber_name }}, ночью возможны перерывы."},
}
COMMON = {"subscriber_name": "Петров Пётр", "contract_number": "26-000042", "balance": "-12.34"}


def money(amount: str, locale: str) -> str:
    return format_currency(Decimal(amount), "RUB", locale=locale)


def day(iso: str, locale: str) -> str:
    return format_date(date.fromisoformat(iso), "short", locale=locale)


def expected_figures(event: str, channel: str, locale: str) -> list[str]:
    """What a subscriber must read in the message: the figures as Babel writes them in their language."""
    d = DATA[event]
    out = [COMMON["contract_number"]] if event != "bulk" else []
    if event == "low_balance":
        out += [format_unit(5, "duration-day", length="long", locale=locale)]
        if channel != "sms":
            out += [money("1234.50", locale), day("2026-12-08", locale)]
        else:
            out += [money(COMMON["balance"], locale)]
    elif event == "blocked":
        out += [money("4321.09", locale), money(COMMON["balance"], locale)]
    elif event == "payment_received":
        out += [money("1500.00", locale), money(COMMON["balance"], locale)]
        if channel == "email":  # 21:30 UTC is the next day's 00:30 in Moscow
            out += [format_datetime(datetime(2026, 12, 3, 21, 30, tzinfo=UTC), "short", tzinfo=MSK,
                                    locale=locale)]
    elif event == "promised_expiring":
        out += [money("777.70", locale), day("2026-12-04", locale)]
    elif event in ("service_assigned", "service_bought"):
        out += [d["service_name"], money(d["price"], locale)]
    elif event == "service_ended":
        out += [d["service_name"], day("2026-11-30", locale)]
    elif event == "freeze_started":
        out += [day("2027-01-15", locale)]
        if channel != "sms":
            out += [money("50.00", locale)]
    elif event == "freeze_ended":
        out += [money(COMMON["balance"], locale)]
    elif event == "bulk":
        out += ["Петров Пётр, ночью возможны перерывы."]
    return out


@pytest.mark.parametrize("event", NOTICE_EVENTS)
@pytest.mark.parametrize("channel", templates.CHANNELS)
@pytest.mark.parametrize("locale", templates.LOCALES)
def test_every_event_renders_its_figures_in_the_language(ctx, event, channel, locale):
    """Does each default message carry the notice's figures as Babel writes them for the subscriber's language?"""
    r = templates.render(event, channel, locale, {**COMMON, **DATA[event]})
    text = unescape(r.subject + "\n" + r.body) if channel == "telegram" else r.subject + "\n" + r.body
    for figure in expected_figures(event, channel, locale):
        assert figure in text, (figure, text)
    assert "None" not in text and "{{" not in text
    if channel == "email":
        assert r.subject.strip()
    else:
        assert r.subject == ""
    if channel == "sms":
        assert len(r.body) <= 160
    # the other language's words are not there: a Russian message has no "Contract", an English no "Договор"
    assert ("Contract" not in text and "contract" not in text) if locale == "ru" else "оговор" not in text


def test_grace_warning_names_the_block_day_not_a_forecast(ctx):
    """Does a grace warning say when the block comes and how much avoids it (not 'lasts N days')?"""
    data = {"grace": True, "block_on": "2026-12-06", "amount_to_unblock": "300.00"}
    for locale in templates.LOCALES:
        r = templates.render("low_balance", "sms", locale, {**COMMON, **data})
        assert day("2026-12-06", locale) in r.body and money("300.00", locale) in r.body


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ balance.__class__ }}",
    "{{ balance|attr('__class__') }}", "{{ cycler.__init__.__globals__ }}", "{{ self._TemplateReference__context }}",
    "{{ 'x' * 1000000000 }}", "{{ 10 ** 100000000 }}", "{{ range(10) | list * 100000000 }}",
])
def test_sandbox_refuses_python_internals(ctx, source):
    """Can an admin's template reach Python's internals? (No: refused at save and at send.)"""
    problems = templates.validate("blocked", "sms", {"body": source})
    assert problems and problems[0].field == "body"
    with pytest.raises((SecurityError, Exception)) as info:
        templates.render("blocked", "sms", "ru", COMMON, template={"body": source})
    assert "object at 0x" not in str(info.value)


def test_validation_names_the_field_and_line(ctx):
    """Does a broken template say which field and which line, and name an unknown variable?"""
    problems = templates.validate("payment_received", "email",
                                  {"subject": "Платёж {{ amount|money }}", "body": "Здравствуйте!\n\n{{ amonut }}"})
    assert [(p.field, p.kind, p.detail, p.line) for p in problems] == [("body", "unknown", "amonut", 3)]
    problems = templates.validate("payment_received", "email", {"subject": "{% if amount %}", "body": "ok"})
    assert problems[0].field == "subject" and problems[0].kind == "syntax" and problems[0].line == 1


def test_a_template_too_long_or_with_a_nul_is_refused(ctx):
    """Is a NUL character or a text past the limit refused by name, before anything is stored?"""
    [p] = templates.validate("blocked", "sms", {"body": "a\x00b"})
    assert (p.field, p.message) == ("body", "must not contain NUL characters")
    [p] = templates.validate("blocked", "email", {"subject": "x" * 201, "body": "ok"})
    assert (p.field, p.message) == ("subject", "at most 200 characters")
    [p] = templates.validate("blocked", "email", {"subject": "ok", "body": "x" * 5001})
    assert (p.field, p.message) == ("body", "at most 5000 characters")


def test_an_override_that_fails_on_a_notices_data_sends_the_default(ctx):
    """If a saved template breaks on one notice's data, does the subscriber still get the built-in message?"""
    templates.save_override("low_balance", "sms", "ru", {"body": "Ещё {{ days_left - 1 }}, потом последний"},
                            actor="t")
    db.session.commit()
    odd = {**COMMON, "days_left": "много"}  # not a number: "- 1" cannot take it
    assert templates.render("low_balance", "sms", "ru", {**COMMON, "days_left": 2}).body == "Ещё 1, потом последний"
    assert templates.render("low_balance", "sms", "ru", odd).body.startswith("Договор 26-000042")


def _notice(contract, event, data):
    notices.record(subscriber_id=contract.subscriber_id, contract_id=contract.id, event=event, data=data)
    db.session.commit()


def test_admin_edits_previews_on_real_data_and_resets(ctx, client):
    """Can an admin change a template, preview it on a chosen contract's data, save it, and reset it?"""
    staff_in_english(client)
    s = gen_subscriber(full_name="Сидорова Анна")
    c = gen_contract(s)
    _notice(c, "payment_received", {"amount": "2500.00", "paid_at": "2026-12-03T10:00:00+00:00"})
    path = "/notification-templates/payment_received/sms/ru"
    page = client.get(path).get_data(as_text=True)
    assert "Платёж {{ amount|money }}" in unescape(page)

    draft = "{{ subscriber_name }}: получили {{ amount|money }}, баланс {{ balance|money }}"
    answer = post(client, f"{path}/preview", {"body": draft, "contract": c.number}, headers=HX)
    html = unescape(answer.get_data(as_text=True))
    assert answer.status_code == 200 and "<html" not in html
    assert f"Сидорова Анна: получили {money('2500.00', 'ru')}, баланс {money('0.00', 'ru')}" in html

    bad = post(client, path, {"body": "Баланс\n{{ balanse|money }}"})
    assert bad.status_code == 422
    assert field_error(bad.get_data(as_text=True), "body") == "line 2: unknown variable: balanse"
    assert db.session.query(NotificationTemplate).count() == 0

    saved = post(client, path, {"body": draft})
    assert saved.status_code == 303
    rendered = templates.render("payment_received", "sms", "ru",
                                templates.context_for(s, c, {"amount": "10.00"}))
    assert rendered.body == f"Сидорова Анна: получили {money('10.00', 'ru')}, баланс {money('0.00', 'ru')}"
    # the English SMS and the Russian e-mail keep their defaults
    assert "Payment" in templates.render("payment_received", "sms", "en", COMMON | {"amount": "1.00"}).body
    listing = client.get("/notification-templates").get_data(as_text=True)
    assert re.search(r'data-template="payment_received/sms/ru">\s*<span class="badge[^"]*">changed', listing)

    reset = post(client, f"{path}/reset", {})
    assert reset.status_code == 303
    assert db.session.query(NotificationTemplate).count() == 0
    assert templates.render("payment_received", "sms", "ru", COMMON | {"amount": "1.00"}).body.startswith("Платёж")
    actions = [a for (a,) in db.session.query(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions[-2:] == ["notification_template.save", "notification_template.reset"]


def test_preview_names_a_contract_that_does_not_exist(ctx, client):
    """Does a preview for a wrong contract number say so beside the field instead of failing?"""
    staff_in_english(client)
    gen_contract()
    answer = post(client, "/notification-templates/blocked/email/en/preview",
                  {"subject": "Blocked", "body": "{{ balance|money }}", "contract": "no-such"})
    assert answer.status_code == 422
    assert field_error(answer.get_data(as_text=True), "contract") == "not found"


def test_only_admins_edit_templates(ctx, client):
    """May a manager change message templates? (No: admins only.)"""
    staff_in_english(client, role="manager")
    assert client.get("/notification-templates").status_code == 403
    assert post(client, "/notification-templates/blocked/sms/ru", {"body": "x"}).status_code == 403
