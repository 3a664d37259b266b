"""The cabinet's notification preferences in Chromium: choices saved and shown again, and the
Telegram link that binds the chat once the user presses «Start»."""
from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import NotificationPreference
from portal.notifications import preferences
from tests.builders import subscriber_with_account
from tests.helpers import CABINET_PASSWORD


@pytest.mark.browser
def test_a_subscriber_sets_notifications_and_links_telegram(live, page, telegram_bot):  # noqa: F811
    """In Russian: «Уведомления» tab; SMS off, only critical, English messages; «Сохранить»; the
    page shows them again; «Привязать Telegram» gives the bot's deep link; after /start the page
    says the chat is linked."""
    s, _c, _a = subscriber_with_account("vera")
    subscriber_id = s.id
    db.session.rollback()
    page.goto(f"{live}/cabinet/login?lang=ru")
    page.fill("input[name=login]", "vera")
    page.fill("input[name=password]", CABINET_PASSWORD)
    page.click("button[type=submit]")
    page.click("nav.cab-tabs >> text=Уведомления")
    form = page.locator("#notification-preferences")
    form.locator("input[name=sms]").uncheck()
    form.locator("input[name=only_critical]").check()
    form.locator("select[name=locale]").select_option("en")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=Настройки уведомлений сохранены.")
    form = page.locator("#notification-preferences")
    assert not form.locator("input[name=sms]").is_checked()
    assert form.locator("input[name=only_critical]").is_checked()
    assert form.locator("input[name=email]").is_checked()
    assert form.locator("select[name=locale]").input_value() == "en"
    db.session.rollback()
    pref = db.session.get(NotificationPreference, subscriber_id)
    assert (pref.sms, pref.only_critical, pref.locale) == (False, True, "en")

    page.click("text=Привязать Telegram")
    link = page.locator("#telegram-deep-link").inner_text()
    assert link.startswith("https://t.me/portal_test_bot?start=")
    telegram_bot.user_sends(777111, "/start " + link.partition("start=")[2])
    assert preferences.poll_telegram()["linked"] == 1
    db.session.rollback()
    page.goto(f"{live}/cabinet/notifications")
    assert page.locator("#telegram-link").inner_text().find("Чат Telegram привязан") >= 0
