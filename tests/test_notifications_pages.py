"""The staff's channel settings and delivery log, and the subscriber's preferences page."""
from __future__ import annotations

import html
import re

from sqlalchemy import select

from portal.billing import notices
from portal.extensions import db
from portal.models import AuditEntry, NotificationChannel, NotificationDelivery, NotificationPreference
from portal.notifications import delivery
from tests.builders import gen_staff, gen_subscriber, subscriber_with_account
from tests.helpers import cabinet_login, field_error, form_token, login, post, staff_in_english

SECRET = "Sms-Secret-api-id-42"


def test_an_admin_sets_up_the_sms_channel_and_never_sees_the_api_id_again(client, ctx):
    """Does the SMS channel form save the gateway, keep the api_id encrypted, show it nowhere
    (not on the form, not in the audit log), and keep it when saved again with the field empty?"""
    staff_in_english(client)
    form = {"api_url": "https://sms.ru", "api_id": SECRET, "sender": "ISP", "rate": "3", "timeout": "10",
            "enabled": "1"}
    assert post(client, "/notification-channels/sms", form).status_code == 303
    row = db.session.scalar(select(NotificationChannel).filter_by(kind="sms"))
    assert row.settings == {"api_url": "https://sms.ru", "sender": "ISP"} and row.rate == 3
    assert SECRET not in row.secret_enc
    page = client.get("/notification-channels/sms").get_data(as_text=True)
    assert SECRET not in page and 'value="ISP"' in page
    assert post(client, "/notification-channels/sms", {**form, "api_id": "", "rate": "4"}).status_code == 303
    from portal.notifications import channels

    db.session.rollback()
    assert channels.load("sms").secret == SECRET and channels.load("sms").rate == 4
    audit = " ".join(str(e.after) for e in db.session.scalars(select(AuditEntry)))
    assert "notification channel sms" in " ".join(e.summary for e in db.session.scalars(select(AuditEntry)))
    assert SECRET not in audit and "changed" in audit and "kept" in audit
    listing = client.get("/notification-channels").get_data(as_text=True)
    assert "https://sms.ru" in listing and SECRET not in listing


def test_a_wrong_channel_field_is_named_and_nothing_is_saved(client, ctx):
    """An SMTP port that is not a number and a From that is no address: 422, both named."""
    staff_in_english(client)
    r = post(client, "/notification-channels/email", {"host": "smtp.isp.test", "port": "abc", "security": "starttls",
                                                     "login": "", "sender": "nobody", "rate": "5",
                                                     "timeout": "10"})
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert field_error(page, "port") and field_error(page, "sender")
    assert db.session.scalar(select(NotificationChannel)) is None


def test_a_viewer_sees_the_channels_but_cannot_change_them(client, ctx):
    staff_in_english(client, role="viewer")
    assert client.get("/notification-channels").status_code == 200
    assert client.get("/notification-channels/telegram").status_code == 403


def test_the_subscriber_card_shows_what_was_sent_and_why_a_message_failed(client, sms_gateway):
    """Staff open a subscriber: do they see the SMS that went out and the one the gateway
    refused, with the gateway's reason; and can a manager send the failed one again?"""
    s = gen_subscriber(phones=["+79001234567"])
    for n, key in enumerate(("a", "b")):
        notices.record(subscriber_id=s.id, event="payment_received", critical=True, dedup_key=key,
                       data={"amount": f"{n + 1}00.00", "paid_at": "2026-12-03T10:00:00+00:00"})
    db.session.commit()
    delivery.prepare()
    first, second = db.session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)).all()
    first_id, second_id = first.id, second.id
    assert delivery.deliver(first_id) == "sent"
    sms_gateway.fail("Номер находится в стоп-листе", status=209, to="79001234567")
    assert delivery.deliver(second_id) == "failed"
    gen_staff("manager1", role="manager")
    login(client, "manager1")
    page = client.get(f"/subscribers/{s.id}").get_data(as_text=True)
    panel = page[page.index('id="notification-log"'):]
    assert re.search(rf'data-delivery="{first_id}" data-state="sent"', panel)
    assert re.search(rf'data-delivery="{second_id}" data-state="failed"', panel)
    assert "209: Номер находится в стоп-листе" in html.unescape(panel)
    assert "+79001234567" not in panel and "79001234567" in panel

    sms_gateway.heal()
    r = post(client, f"/notification-deliveries/{second_id}/retry", {})
    assert r.status_code == 303
    db.session.rollback()
    assert db.session.get(NotificationDelivery, second_id).state == "queued"
    assert delivery.deliver(second_id) == "sent"
    assert len(sms_gateway.messages) == 2


def test_the_cabinet_saves_preferences_and_links_telegram(client, telegram_bot):
    """The subscriber turns SMS off, asks for critical messages only, in English; then asks for
    a Telegram link: is it the bot's deep link with a one-time token that binds the chat?"""
    from portal.notifications import preferences

    s, _c, _a = subscriber_with_account("olga")
    cabinet_login(client, "olga")
    page = client.get("/cabinet/notifications").get_data(as_text=True)
    assert 'name="sms" value="1" checked' in page and "not linked yet" in page
    token = form_token(client, "/cabinet/notifications")
    r = client.post("/cabinet/notifications", data={"csrf_token": token, "email": "1", "telegram": "1",
                                                    "only_critical": "1", "locale": "en"})
    assert r.status_code == 303
    db.session.rollback()
    pref = db.session.get(NotificationPreference, s.id)
    assert (pref.email, pref.sms, pref.telegram, pref.only_critical, pref.locale) == (True, False, True, True, "en")

    r = client.post("/cabinet/notifications", data={"csrf_token": token, "locale": "de"})
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "locale")

    page = client.post("/cabinet/notifications/telegram", data={"csrf_token": token}).get_data(as_text=True)
    link = re.search(r'id="telegram-deep-link"[^>]*>([^<]+)<', page).group(1)
    assert link.startswith("https://t.me/portal_test_bot?start=")
    telegram_bot.user_sends(4242, "/start " + link.partition("start=")[2])
    assert preferences.poll_telegram()["linked"] == 1
    assert "A Telegram chat is linked" in client.get("/cabinet/notifications").get_data(as_text=True)
