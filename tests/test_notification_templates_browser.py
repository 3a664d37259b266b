"""Browser (Chromium): an admin edits a message template, previews the draft on a chosen
contract's data without leaving the page, saves it, and resets it; staff preview a bulk
message's count before sending."""
from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency
from playwright.sync_api import expect

from portal.billing import ledger, notices
from portal.extensions import db
from portal.models import BulkMessage, NotificationTemplate
from tests.builders import gen_contract, gen_staff, gen_subscriber


def _log_in(page, live: str) -> None:
    page.goto(f"{live}/login?lang=ru")
    page.fill("input[name=login]", "boss")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    expect(page.locator("form.top-search input[name=q]")).to_be_visible()


def test_an_admin_previews_a_draft_on_a_contracts_data_then_saves_and_resets(app, live, page):
    """Does the preview show the unsaved draft with the chosen contract's figures as Russian
    writes them, and does saving and resetting change what subscribers get?"""
    with app.app_context():
        gen_staff("boss", role="admin")
        gen_contract(gen_subscriber(full_name="Первый Абонент"))
        c = gen_contract(gen_subscriber(full_name="Кузнецова Мария"), number="26-000777")
        ledger.post(c.id, "correction", Decimal("-345.60"), actor="t", comment="долг")
        notices.record(subscriber_id=c.subscriber_id, contract_id=c.id, event="blocked",
                       data={"blocked_on": "2026-12-03", "amount_to_unblock": "345.60"})
        db.session.commit()
    _log_in(page, live)
    page.click("nav.sidebar >> text=Шаблоны сообщений")
    page.click("a[data-template='blocked/sms/ru']")
    url = page.url
    body = page.locator("textarea[name=body]")
    expect(body).to_have_value(re.compile("заблокирован"))
    body.fill("{{ subscriber_name }}, внесите {{ amount_to_unblock|money }} (баланс {{ balance|money }}).")
    page.fill("input[name=contract]", "26-000777")
    page.click("#preview-button")
    shown = (f"Кузнецова Мария, внесите {format_currency(Decimal('345.60'), 'RUB', locale='ru')} "
             f"(баланс {format_currency(Decimal('-345.60'), 'RUB', locale='ru')}).")
    expect(page.locator("#preview-body")).to_have_text(shown)
    assert page.url == url  # the preview came into the page; nothing saved yet
    with app.app_context():
        assert db.session.query(NotificationTemplate).count() == 0

    body.fill("Баланс {{ balanse }}")
    page.click("#preview-button")
    expect(page.locator("#preview li[data-field=body]")).to_contain_text("неизвестная переменная: balanse")

    body.fill("{{ subscriber_name }}: для включения внесите {{ amount_to_unblock|money }}.")
    page.click("#template-form button.primary")
    expect(page.locator(".flash")).to_contain_text("Шаблон сохранён")
    with app.app_context():
        assert db.session.query(NotificationTemplate).one().body.startswith("{{ subscriber_name }}: для")
    page.click("#reset-form button")
    expect(page.locator(".flash")).to_contain_text("Восстановлен шаблон по умолчанию")
    expect(body).to_have_value(re.compile("заблокирован"))
    with app.app_context():
        assert db.session.query(NotificationTemplate).count() == 0


def test_staff_see_the_count_and_one_message_before_sending_a_bulk_message(app, live, page):
    """Does the bulk form show how many subscribers get the message and how the first reads it, then send once?"""
    with app.app_context():
        gen_staff("boss", role="manager")
        for i, amount in enumerate(("-10.00", "-20.00", "5.00")):
            c = gen_contract(gen_subscriber(full_name=f"Должник {i}"))
            ledger.post(c.id, "correction", Decimal(amount), actor="t", comment="x")
        db.session.commit()
    _log_in(page, live)
    page.click("nav.sidebar >> text=Рассылки")
    page.click("text=Новое сообщение")
    page.fill("input[name=balance_below]", "0")
    page.fill("input[name=subject]", "Напоминание")
    page.fill("textarea[name=text]", "{{ subscriber_name }}, ваш баланс {{ balance|money }}.")
    page.click("#bulk-preview-button")
    expect(page.locator("#bulk-count")).to_have_attribute("data-count", "2")
    expect(page.locator("#bulk-preview-sms")).to_have_text(
        f"Должник 0, ваш баланс {format_currency(Decimal('-10.00'), 'RUB', locale='ru')}.")
    page.click("#bulk-send")
    expect(page.locator(".flash")).to_contain_text("Сообщение отправлено абонентам: 2")
    with app.app_context():
        assert db.session.query(BulkMessage).one().recipients == 2
