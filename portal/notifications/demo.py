"""`make run`: the notification channels on local stand-ins — a mail catcher (plain SMTP), the
SMS gateway emulator and the Telegram Bot API emulator — each with an inbox page, so that a
demo operator sees the messages arrive. A channel staff pointed elsewhere (not marked as the
demo's) is left alone."""
from __future__ import annotations

import socket

from ..extensions import db
from . import channels
from .sms_emulator import SmsGateway
from .smtp_emulator import MailCatcher
from .telegram_emulator import TelegramBotApi

PORTS = {"smtp": 8025, "mail_page": 8094, "sms": 8095, "telegram": 8096}  # or free ones when taken
SMS_API_ID, BOT_TOKEN, BOT_NAME = "demo-sms-api-id", "100500:demo-bot-token", "portal_demo_bot"


def _free(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _ours(kind: str) -> bool:
    r = channels.row(kind)
    return r is None or r.demo_emulator


def start() -> list[tuple[str, object, str]]:
    """Start the stand-ins of the channels that are the demo's; (title, emulator, inbox URL)."""
    running = []
    if _ours("email"):
        mail = MailCatcher(port=_free(PORTS["mail_page"]), smtp_port=_free(PORTS["smtp"])).start()
        channels.save("email", {"host": "127.0.0.1", "port": str(mail.smtp_port), "security": "none", "login": "",
                                "sender": "Демо-провайдер <billing@isp.example>", "rate": "20", "timeout": "10",
                                "enabled": True}, actor="devserver", demo_emulator=True)
        running.append(("Mail catcher (e-mail channel)", mail, mail.url))
    if _ours("sms"):
        sms = SmsGateway(port=_free(PORTS["sms"]), api_id=SMS_API_ID, balance=500.0).start()
        channels.save("sms", {"api_url": sms.url, "api_id": SMS_API_ID, "sender": "", "rate": "5", "timeout": "10",
                              "enabled": True}, actor="devserver", demo_emulator=True)
        running.append(("SMS gateway emulator", sms, sms.url))
    if _ours("telegram"):
        bot = TelegramBotApi(port=_free(PORTS["telegram"]), token=BOT_TOKEN, username=BOT_NAME).start()
        channels.save("telegram", {"api_url": bot.url, "token": BOT_TOKEN, "bot_username": BOT_NAME, "rate": "25",
                                   "timeout": "10", "enabled": True}, actor="devserver", demo_emulator=True)
        running.append(("Telegram Bot API emulator", bot, bot.url))
    db.session.commit()
    return running
