"""A subscriber's notification preferences and the Telegram link.

Which channels a notice goes by (``channels_for``): the channels the subscriber keeps on, that
staff enabled, and for which we have an address (e-mail, the first phone that is a mobile
number, a linked Telegram chat). "Only service-critical messages" drops the rest; a critical
message still honours the channel choice, but a subscriber who switched every channel off
gets it by every channel we have an address for (a block must not go unheard).

Telegram linking: the cabinet asks for a one-time token (``link_token``) and shows the deep
link ``https://t.me/<bot>?start=<token>``; the bot's updates (``poll_telegram``, a periodic
job) carry "/start <token>", and ``bind`` gives that chat to the subscriber. The token is
stored hashed and expires after LINK_TTL.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from ..billing import audit
from ..billing.errors import BillingError
from ..extensions import db
from ..models import CHANNEL_KINDS, NotificationChannel, NotificationPreference, Subscriber, utcnow
from ..models.notifications import LOCALES
from . import channels, sms
from .senders import SendError

log = logging.getLogger(__name__)

LINK_TTL = timedelta(hours=1)


def get(subscriber_id: int) -> NotificationPreference | None:
    return db.session.get(NotificationPreference, subscriber_id)


def locale_of(pref: NotificationPreference | None, subscriber: Subscriber | None = None) -> str:
    """The preferences' language; a subscriber who never saved preferences is written to in the
    card's language (``subscribers.language``), Russian when neither says."""
    if pref is not None and pref.locale in LOCALES:
        return pref.locale
    language = getattr(subscriber, "language", None)
    return language if language in LOCALES else "ru"


def addresses(subscriber: Subscriber, pref: NotificationPreference | None) -> dict[str, str | None]:
    phone = next((p for p in (sms.normalize_phone(x) for x in (subscriber.phones or [])) if p), None)
    chat = pref.telegram_chat_id if pref is not None else None
    return {"email": subscriber.email or None, "sms": phone, "telegram": str(chat) if chat else None}


def channels_for(subscriber: Subscriber, pref: NotificationPreference | None, critical: bool,
                 enabled: set[str]) -> list[tuple[str, str]]:
    """(channel, address) pairs a notice goes by (the module docstring says the rule)."""
    if pref is not None and pref.only_critical and not critical:
        return []
    where = addresses(subscriber, pref)
    reachable = [k for k in CHANNEL_KINDS if k in enabled and where[k]]
    chosen = [k for k in reachable if pref is None or getattr(pref, k)]
    if not chosen and critical:
        chosen = reachable
    return [(k, where[k]) for k in chosen]


def _row(subscriber_id: int) -> NotificationPreference:
    pref = get(subscriber_id)
    if pref is None:
        pref = NotificationPreference(subscriber_id=subscriber_id, email=True, sms=True, telegram=True,
                                      only_critical=False, locale="ru")
        db.session.add(pref)
    return pref


def save(subscriber_id: int, data: dict, *, actor: str) -> NotificationPreference:
    """The cabinet's form: a checkbox per channel, only_critical, locale."""
    locale = str(data.get("locale") or "ru")
    if locale not in LOCALES:
        raise BillingError({"locale": f"one of {', '.join(LOCALES)}"})
    pref = _row(subscriber_id)
    before = values(pref)
    for kind in CHANNEL_KINDS:
        setattr(pref, kind, bool(data.get(kind)))
    pref.only_critical, pref.locale, pref.updated_at = bool(data.get("only_critical")), locale, utcnow()
    db.session.flush()
    audit.record(actor, "notification_preferences.save", None, "notification preferences", before=before,
                 after=values(pref), object_type="subscriber", object_id=subscriber_id)
    return pref


def values(pref: NotificationPreference | None) -> dict:
    if pref is None:
        return {"email": True, "sms": True, "telegram": True, "only_critical": False, "locale": "ru",
                "telegram_linked": False}
    return {"email": pref.email, "sms": pref.sms, "telegram": pref.telegram, "only_critical": pref.only_critical,
            "locale": pref.locale, "telegram_linked": pref.telegram_chat_id is not None}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bot_username() -> str | None:
    r = db.session.scalar(select(NotificationChannel).filter_by(kind="telegram"))
    return (r.settings or {}).get("bot_username") if r is not None and r.enabled else None


def link_token(subscriber_id: int) -> str:
    """A new one-time /start token for this subscriber (the previous one stops working)."""
    token = secrets.token_urlsafe(24)  # 32 characters of A-Z a-z 0-9 _ -: what a deep link allows
    pref = _row(subscriber_id)
    pref.telegram_link_hash, pref.telegram_link_expires = _hash(token), utcnow() + LINK_TTL
    db.session.flush()
    return token


def deep_link(token: str) -> str | None:
    bot = bot_username()
    return f"https://t.me/{bot}?start={token}" if bot else None


def bind(token: str, chat_id: int) -> int | None:
    """Give ``chat_id`` to the subscriber whose unexpired token this is; the subscriber's id."""
    pref = db.session.scalar(select(NotificationPreference).where(
        NotificationPreference.telegram_link_hash == _hash(token),
        NotificationPreference.telegram_link_expires > utcnow()))
    if pref is None:
        return None
    pref.telegram_chat_id, pref.telegram = chat_id, True
    pref.telegram_link_hash = pref.telegram_link_expires = None
    pref.updated_at = utcnow()
    db.session.flush()
    audit.record("telegram", "notification_preferences.telegram_linked", None, "Telegram chat linked",
                 object_type="subscriber", object_id=pref.subscriber_id)
    return pref.subscriber_id


def unlink(subscriber_id: int, *, actor: str) -> None:
    db.session.execute(update(NotificationPreference).where(NotificationPreference.subscriber_id == subscriber_id)
                       .values(telegram_chat_id=None, telegram_link_hash=None, telegram_link_expires=None,
                               updated_at=utcnow()))
    audit.record(actor, "notification_preferences.telegram_unlinked", None, "Telegram chat unlinked",
                 object_type="subscriber", object_id=subscriber_id)


LINKED_REPLY = {"ru": "Готово: уведомления по договору будут приходить в этот чат.",
                "en": "Done: notifications about your contract will come to this chat."}
UNKNOWN_REPLY = {"ru": "Ссылка устарела или уже использована. Получите новую в личном кабинете.",
                 "en": "This link has expired or was used. Get a new one in your account."}


def poll_telegram() -> dict:
    """Read the bot's new updates (getUpdates from the stored offset) and bind the chats whose
    "/start <token>" matches. The offset is saved after the binds commit, so an update is
    never lost (one read twice binds nothing twice: the token is gone)."""
    from .telegram import TelegramClient

    channel = channels.load("telegram")
    r = channels.row("telegram")
    offset = r.poll_offset if r is not None else None
    db.session.rollback()
    if channel is None:
        return {"updates": 0, "linked": 0}
    client = TelegramClient(channel)
    updates = client.updates(offset)
    linked, replies = 0, []
    for u in updates:
        message = u.get("message") or {}
        text, chat = str(message.get("text") or ""), (message.get("chat") or {}).get("id")
        offset = max(offset or 0, int(u["update_id"]) + 1)
        if chat is None or not text.startswith("/start"):
            continue
        token = text.partition(" ")[2].strip()
        subscriber_id = bind(token, int(chat)) if token else None
        if subscriber_id is not None:
            linked += 1
        locale = locale_of(get(subscriber_id)) if subscriber_id else "ru"
        replies.append((chat, (LINKED_REPLY if subscriber_id else UNKNOWN_REPLY)[locale]))
    if updates:
        db.session.execute(update(NotificationChannel).where(NotificationChannel.kind == "telegram")
                           .values(poll_offset=offset))
    db.session.commit()
    for chat, text in replies:  # a courtesy: a failed reply changes nothing
        try:
            client.send(str(chat), text)
        except SendError as e:
            log.info("telegram: reply to a /start not sent: %s", e)
    return {"updates": len(updates), "linked": linked}
