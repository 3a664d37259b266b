"""`make run`'s notification stand-ins: the mail catcher, the SMS gateway and the Telegram Bot
API emulators, with the channels pointed at them; a demo operator sees each message arrive on
the emulators' inbox pages."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from portal.billing import notices
from portal.extensions import db
from portal.models import NotificationChannel, NotificationDelivery
from portal.notifications import channels, delivery, preferences
from portal.notifications import demo as notifications_demo
from tests.builders import gen_subscriber

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_emulators(ctx, monkeypatch):
    monkeypatch.setattr(notifications_demo, "PORTS", {k: 0 for k in notifications_demo.PORTS})  # any free port
    running = notifications_demo.start()
    yield {title.split()[0]: emu for title, emu, _ in running}
    for _, emu, _ in running:
        emu.stop()


def test_demo_messages_show_on_the_emulators_inbox_pages(demo_emulators):
    """With the demo channels, does a payment message reach the mail catcher, the SMS gateway
    and (after the user pressed Start through the emulator's form) the Telegram bot's inbox?"""
    assert {r.kind: r.demo_emulator for r in db.session.scalars(select(NotificationChannel))} == \
        {"email": True, "sms": True, "telegram": True}
    s = gen_subscriber(email="demo@example.ru", phones=["+7 912 345-67-89"])
    token = preferences.link_token(s.id)
    db.session.commit()
    bot = demo_emulators["Telegram"]
    r = requests.post(f"{bot.url}/_user", data={"chat_id": "100500", "text": f"/start {token}"},
                      allow_redirects=False, timeout=5)
    assert r.status_code == 303
    assert preferences.poll_telegram()["linked"] == 1
    notices.record(subscriber_id=s.id, event="payment_received", critical=True, dedup_key="demo-pay",
                   data={"amount": "750.00", "paid_at": "2026-12-03T10:00:00+00:00"})
    db.session.commit()
    delivery.prepare()
    rows = db.session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)).all()
    assert sorted(r.channel for r in rows) == ["email", "sms", "telegram"]
    for row_id in [r.id for r in rows]:
        assert delivery.deliver(row_id) == "sent"
    for name in ("Mail", "SMS", "Telegram"):
        page = requests.get(demo_emulators[name].url + "/", timeout=5).text
        assert "750" in page, name
    assert demo_emulators["Mail"].messages[0]["to"] == ["demo@example.ru"]


def test_a_channel_staff_pointed_elsewhere_is_left_alone(ctx, monkeypatch):
    monkeypatch.setattr(notifications_demo, "PORTS", {k: 0 for k in notifications_demo.PORTS})
    channels.save("sms", {"api_url": "https://sms.ru", "api_id": "real-one", "sender": "", "rate": "2",
                          "timeout": "10", "enabled": True}, actor="test")
    db.session.commit()
    running = notifications_demo.start()
    try:
        assert [t for t, _, _ in running if t.startswith("SMS")] == []
        assert channels.load("sms").get("api_url") == "https://sms.ru"
    finally:
        for _, emu, _ in running:
            emu.stop()
