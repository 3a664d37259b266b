"""Money and moments as the reader's language writes them (issue 16, item 6): amounts through
Babel in the operator's currency (BILLING_CURRENCY), dates and times in the operator's zone
(BILLING_TZ), on staff pages and in the cabinet alike; no hand-made "5000.00 RUB"; error pages
and rq-dashboard lead back. The expected texts are Babel's own, worked out here for each language."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency

from tests.builders import gen_contract, gen_staff, gen_subscriber
from tests.helpers import CABINET_PASSWORD as PASSWORD
from tests.helpers import cabinet_login, login

BIG = Decimal("1234567.89")
TAKEN = Decimal("-1234667.89")  # a correction that leaves the balance at -100.00
# 22:30 UTC on 31 March is 01:30 on 1 April in Moscow: a page in UTC would show March
PAID_AT = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)


def _text(html: str) -> str:
    """What a reader sees: tags (and their attributes: input values, titles) left out."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S))


def _hand_made(text: str) -> list[str]:
    """Amounts and dates no Babel format writes: "5000.00 RUB", "1234567.89", "500,00 ₽" with a
    plain space (Babel puts a no-break one), an ISO day."""
    return re.findall(r"\d\s*RUB\b|\b\d{4,}[.,]\d\d\b|\d ₽|\b\d{4}-\d\d-\d\d\b", text)


@pytest.fixture
def contract_with_money(app):
    """A subscriber with a cabinet login whose contract got a payment of 1 234 567,89 (at
    PAID_AT) and a correction leaving -100,00; the credit limit is zero."""
    from portal.billing import ledger
    from portal.extensions import db
    from portal.models import LedgerEntry

    with app.app_context():
        s = gen_subscriber(cabinet_login="locale", cabinet_password=PASSWORD)
        c = gen_contract(s)
        paid, _created = ledger.payment(c.id, BIG, actor="t", external_id="LOC-1")
        ledger.post(c.id, "correction", TAKEN, actor="t", comment="сверка")
        # the payment's moment set to one whose day differs between UTC and Moscow (test data only)
        db.session.execute(db.update(LedgerEntry).where(LedgerEntry.id == paid.id).values(created_at=PAID_AT))
        db.session.commit()
        gen_staff("locale-staff")
        return {"id": c.id, "created_at": c.created_at, "tz": ZoneInfo(app.config["BILLING_TZ"])}


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_staff_pages_show_amounts_and_moments_as_babel_writes_them(app, client, contract_with_money, lang):
    """Staff see "1 234 567,89 ₽" and "01.04.2026, 01:30" in Russian, Babel's English in English:
    on the contract page, the payments list and the contracts list, in the operator's zone."""
    c, tz = contract_with_money, contract_with_money["tz"]
    big, balance, zero = (format_currency(v, "RUB", locale=lang) for v in (BIG, BIG + TAKEN, Decimal(0)))
    moment = format_datetime(PAID_AT, "short", tzinfo=tz, locale=lang)
    assert ("01.04.2026" in moment) if lang == "ru" else ("4/1/26" in moment)  # the operator's day, not UTC's
    login(client, "locale-staff")

    contract = client.get(f"/contracts/{c['id']}?lang={lang}").get_data(as_text=True)
    assert f'id="balance"><span class="num neg">{balance}</span>' in contract  # negative, in the big figure
    assert big in contract and moment in contract and zero in contract  # ledger row; the credit limit
    payments = client.get(f"/payments?lang={lang}").get_data(as_text=True)
    assert big in payments and moment in payments
    contracts = client.get(f"/contracts?lang={lang}").get_data(as_text=True)
    assert balance in contracts and format_date(c["created_at"].astimezone(tz), "short", locale=lang) in contracts

    for html in (contract, payments, contracts):
        text = _text(html)
        assert not _hand_made(text), _hand_made(text)
        if lang == "ru":
            assert "RUB" not in text


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_cabinet_shows_amounts_and_moments_as_babel_writes_them(app, client, contract_with_money, lang):
    """The subscriber's ledger reads the same amounts and moments as staff see them."""
    c, tz = contract_with_money, contract_with_money["tz"]
    cabinet_login(client, "locale", lang=lang)
    html = client.get(f"/cabinet/contracts/{c['id']}?lang={lang}").get_data(as_text=True)
    assert "+" + format_currency(BIG, "RUB", locale=lang) in html  # money that came in
    assert format_currency(BIG + TAKEN, "RUB", locale=lang) in html
    assert format_datetime(PAID_AT, "short", tzinfo=tz, locale=lang) in html
    text = _text(html)
    assert not _hand_made(text), _hand_made(text)
    if lang == "ru":
        assert "RUB" not in text


def test_the_operators_currency_is_the_one_every_amount_shows(app):
    """BILLING_CURRENCY=EUR: the same pages write euros, the field labels name the euro."""
    from flask import render_template_string

    from portal.web import money

    app.config["BILLING_CURRENCY"] = "EUR"
    try:
        for lang in ("ru", "en"):
            with app.test_request_context(f"/?lang={lang}"):
                assert money(Decimal("-5")) == format_currency(Decimal("-5"), "EUR", locale=lang)
                assert money(Decimal("5"), "USD") == format_currency(Decimal("5"), "USD", locale=lang)
                assert money(None) == "" and money("n/a") == "n/a"  # nothing; a platform's own text
                label = render_template_string('{{ _("Amount, %(currency)s", currency=currency_symbol()) }}')
                assert label.endswith("€")
    finally:
        app.config["BILLING_CURRENCY"] = "RUB"


def test_error_pages_and_rq_dashboard_lead_back(app, client):
    """A viewer refused a page, a mistyped address, an error on our side: each page has a way
    back; so has rq-dashboard's own page."""
    from flask import render_template

    with app.app_context():
        gen_staff("looker", role="viewer")
        gen_staff("root")
    login(client, "looker")
    refused = client.get("/jobs/rq/")
    assert refused.status_code == 403
    assert re.search(r'<a class="btn" id="back" href="/">', refused.get_data(as_text=True))
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and 'id="back" href="/"' in missing.get_data(as_text=True)
    with app.test_request_context("/contracts/1?lang=en"):
        assert 'id="back" href="/"' in render_template("errors/500.html")
    with app.test_request_context("/cabinet/x"):
        assert 'id="back" href="/cabinet/"' in render_template("errors/500.html")

    login(client, "root")
    dashboard = client.get("/jobs/rq/")
    assert dashboard.status_code == 200
    assert re.search(r'<a class="navbar-brand" id="back-to-portal" href="/jobs">', dashboard.get_data(as_text=True))


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_stalker_console_writes_stalkers_dates_and_balance_in_the_language(app, client, lang):
    """Stalker sends "2026-04-11" and "0.00": the STB table shows them as the page's language
    writes a day, a moment and an amount; a zero date stays empty."""
    from portal.platforms.stalker import console

    with app.app_context():
        console.store("stb", [{"mac": "00:1A:79:00:00:01", "ls": "501", "login": "tv_a", "status": "1",
                               "online": "0", "additional_services_on": "1", "ip": "", "version": "",
                               "account_balance": "1234.5", "end_date": "2026-04-11",
                               "last_active": "2026-04-11 13:05:00"},
                              {"mac": "00:1A:79:00:00:02", "ls": "502", "login": "tv_b", "status": "1",
                               "online": "0", "additional_services_on": "0", "ip": "", "version": "",
                               "account_balance": "0.00", "end_date": "0000-00-00", "last_active": ""}])
        gen_staff("tv-staff")
    login(client, "tv-staff")
    html = client.get(f"/stalker/stb?lang={lang}").get_data(as_text=True)
    row = re.search(r'<tr data-row="\d+">(?:(?!</tr>).)*tv_a.*?</tr>', html, re.S).group(0)
    assert f'<td class="stalker-end_date">{format_date(datetime(2026, 4, 11), "short", locale=lang)}</td>' in row
    moment = format_datetime(datetime(2026, 4, 11, 13, 5), "short", locale=lang)  # Stalker's own clock
    assert f'<td class="stalker-last_active">{moment}</td>' in row
    assert f'<td class="stalker-account_balance">{format_currency(Decimal("1234.5"), "RUB", locale=lang)}</td>' in row
    assert "2026-04-11" not in _text(html) and "1234.5" not in _text(html)


def test_every_audit_action_billing_records_has_words():
    """Staff never read a bare `stalker.stb_register` or `departments.create`: every action
    the code records (found in its source) has a title."""
    from pathlib import Path

    from portal.web import ACTION_TITLES

    root = Path(__file__).resolve().parents[1]
    recorded = set()
    for path in [*root.glob("portal/**/*.py"), *root.glob("jobs/**/*.py")]:
        recorded |= set(re.findall(r'record\(\s*[^,()]+(?:\([^()]*\))?,\s*"([a-z_]+(?:\.[a-z_]+)+)"', path.read_text()))
    # actions named by an f-string: the ledger's kinds, intercom's jobs, BILLmanager's lists
    recorded |= {f"ledger.{k}" for k in ("payment", "charge", "refund", "correction")}
    recorded |= {f"intercom.{k}" for k in ("lookup", "check", "profiles")}
    recorded |= {f"{t}.{v}" for t in ("data_centers", "departments") for v in ("create", "update", "delete")}
    assert len(recorded) > 60  # the scan found the code's actions
    assert sorted(recorded - set(ACTION_TITLES)) == []


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_audit_log_writes_amounts_and_block_reasons_in_words(app, client, lang):
    """The audit log reads "Payment · 1 234 567,89 ₽ · сверка", not "payment 1234567.89", and
    a block "by a manager", not "blocked: manager"."""
    from portal.billing import accounts as acc
    from portal.billing import ledger
    from portal.extensions import db
    from tests.builders import gen_account

    with app.app_context():
        a = gen_account()
        ledger.payment(a.contract_id, BIG, actor="t", external_id="AUD-1", comment="сверка")
        acc.block(a, "manager", actor="t")
        db.session.commit()
        gen_staff("auditor")
    login(client, "auditor")
    html = client.get(f"/audit?lang={lang}").get_data(as_text=True)
    payment = re.search(r'data-action="ledger\.payment">.*?</tr>', html, re.S).group(0)
    assert f"{format_currency(BIG, 'RUB', locale=lang)} · сверка" in payment
    block = re.search(r'data-action="account\.block">.*?</tr>', html, re.S).group(0)
    assert ("менеджером" if lang == "ru" else "by a manager") in block and "blocked: manager" not in block
    text = _text(html)
    assert not _hand_made(text), _hand_made(text)


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_billmanagers_stored_notes_read_in_the_language_with_babels_amounts(app, client, lang):
    """A task says "Balance 350,00 ₽ is below the minimum 1 000,00 ₽" in the reader's language,
    not the stored "Balance 350.00 RUB is below the minimum 1000.00."."""
    from portal.extensions import db
    from portal.platforms.billmanager.tasks import open_task

    with app.app_context():
        open_task("t:1", "Top up the selling account of handler «VDS»", department_id=None,
                  body="Balance 350.00 RUB is below the minimum 1000.00.")
        open_task("t:2", "Order of service #7 waits: top up the selling account", department_id=None,
                  body="VDS: balance 350.00 RUB, needs 300.00 + minimum 100.00; "
                       "Other: the balance cannot be read: timeout")
        db.session.commit()
        gen_staff("tasker")
    login(client, "tasker")
    shown = _text(client.get(f"/tasks?lang={lang}").get_data(as_text=True))
    assert not _hand_made(shown), _hand_made(shown)
    text = " ".join(shown.split())  # (no-break spaces read as plain ones from here on)
    rub = {v: format_currency(Decimal(v), "RUB", locale=lang).replace("\xa0", " ")
           for v in ("350", "1000", "300", "100")}
    if lang == "ru":
        assert f"Баланс {rub['350']} ниже неснижаемого остатка {rub['1000']}." in text
        assert f"VDS: баланс {rub['350']}, нужно {rub['300']} и неснижаемый остаток {rub['100']}" in text
        assert "Заказ услуги №7 ждёт: пополните счёт у поставщика" in text and "баланс не прочитать: timeout" in text
    else:
        assert f"Balance {rub['350']} is below the minimum {rub['1000']}." in text


def test_amounts_and_moments_read_as_babel_writes_them_however_often_they_are_shown(app):
    """A list page shows the same amounts, days and minutes again and again (L2: each text is
    made by Babel once and reused): every one still reads exactly as Babel writes it, in each
    language and each operator's zone, whatever was shown before it (another language, another
    zone, the same minute of another day, a zone's clock change, an amount written as -0 or 1E+3)."""
    from datetime import timedelta

    from portal.web import local_date, local_time, money

    amounts = [Decimal(v) for v in ("0", "-0", "0.00", "-0.00", "1E+3", "1000", "1234567.89", "-100.5", "0.005")]
    start = datetime(2026, 3, 7, 21, 58, 30, tzinfo=UTC)  # (New York's clock moves on 8 March 2026, 07:00 UTC)
    moments = [start + timedelta(minutes=37 * k) for k in range(60)] + [start.replace(tzinfo=None)]
    saved = app.config["BILLING_TZ"]
    try:
        for _round in range(2):  # the second time round, every text comes from what the first made
            for zone in ("Europe/Moscow", "America/New_York", "Asia/Kolkata"):
                app.config["BILLING_TZ"] = zone
                tz = ZoneInfo(zone)
                for lang in ("ru", "en", "ru"):
                    with app.test_request_context(f"/?lang={lang}"):
                        for a in amounts:
                            assert money(a) == format_currency(a, "RUB", locale=lang), (a, lang)
                        for m in moments:
                            aware = m if m.tzinfo else m.replace(tzinfo=UTC)  # (a naive moment is UTC)
                            assert local_time(m) == format_datetime(aware, "short", tzinfo=tz, locale=lang), \
                                (m, zone, lang)
                            assert local_date(m) == format_date(aware.astimezone(tz), "short", locale=lang), \
                                (m, zone, lang)
    finally:
        app.config["BILLING_TZ"] = saved
