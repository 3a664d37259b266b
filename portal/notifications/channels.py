"""The channels staff configure: e-mail (SMTP), SMS (an SMS.ru-style HTTP gateway) and Telegram
(the Bot API). One row per kind; the secret (SMTP password, SMS api_id, bot token) is stored
encrypted (billing/crypto.py), sent only to its service, never shown back nor logged: the
audit log says "changed" or "kept"."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from ..billing import audit
from ..billing.crypto import decrypt, encrypt
from ..billing.errors import BillingError
from ..extensions import db
from ..models import CHANNEL_KINDS, NotificationChannel, utcnow
from ..models.notifications import SMTP_SECURITY

SMS_API_URL = "https://sms.ru"
TELEGRAM_API_URL = "https://api.telegram.org"
# what each kind keeps in ``settings`` (shown on the form) besides the secret
FIELDS = {
    "email": ("host", "port", "security", "login", "sender"),
    "sms": ("api_url", "sender"),
    "telegram": ("api_url", "bot_username"),
}
DEFAULT_RATE = {"email": 5, "sms": 2, "telegram": 25}  # Telegram: ~30 messages/s per bot at most
SECRET_FIELD = {"email": "password", "sms": "api_id", "telegram": "token"}
# a channel's timeout, seconds: well below the delivery job's JOB_TIMEOUT (120 s), which an HTTP
# call (connect + read) or an SMTP exchange of several steps must not reach — a job stopped
# mid-send leaves it unknown whether the message went out
MAX_TIMEOUT = 30


@dataclass(frozen=True)
class Channel:
    """A channel ready to send: settings and the decrypted secret (never logged)."""

    kind: str
    settings: dict
    secret: str | None
    rate: int
    timeout: int

    def get(self, key: str, default=None):
        return self.settings.get(key, default)


def row(kind: str) -> NotificationChannel | None:
    return db.session.scalar(select(NotificationChannel).filter_by(kind=kind))


def load(kind: str) -> Channel | None:
    """The enabled channel of this kind, or None."""
    r = row(kind)
    if r is None or not r.enabled:
        return None
    return Channel(r.kind, dict(r.settings or {}), decrypt(r.secret_enc), r.rate, min(r.timeout, MAX_TIMEOUT))


def enabled_kinds() -> set[str]:
    return set(db.session.scalars(select(NotificationChannel.kind).where(NotificationChannel.enabled)))


def values(r: NotificationChannel | None, kind: str) -> dict:
    """The form's values (no secret)."""
    if r is None:
        defaults = {"email": {"port": "587", "security": "starttls"}, "sms": {"api_url": SMS_API_URL},
                    "telegram": {"api_url": TELEGRAM_API_URL}}[kind]
        return {**{f: "" for f in FIELDS[kind]}, **defaults, "rate": str(DEFAULT_RATE[kind]), "timeout": "10",
                "enabled": True}
    return {**{f: str(r.settings.get(f, "") or "") for f in FIELDS[kind]}, "rate": str(r.rate),
            "timeout": str(r.timeout), "enabled": r.enabled}


def _int(data: dict, field: str, low: int, high: int, errors: dict, message: str) -> int | None:
    try:
        n = int(str(data.get(field, "")).strip())
        if not low <= n <= high:
            raise ValueError
        return n
    except (TypeError, ValueError):
        errors[field] = message
        return None


def save(kind: str, data: dict, *, actor: str, demo_emulator: bool = False) -> NotificationChannel:
    """Create or change the channel of ``kind``. The secret field (``SECRET_FIELD``) empty keeps
    the stored one (required the first time). Every wrong field is named; nothing is written."""
    if kind not in CHANNEL_KINDS:
        raise BillingError({"kind": f"one of {', '.join(CHANNEL_KINDS)}"})
    errors: dict[str, str] = {}
    settings: dict = {}
    text = {f: str(data.get(f) or "").strip() for f in FIELDS[kind]}
    if kind == "email":
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", text["host"]):
            errors["host"] = "a host name or address"
        settings["host"] = text["host"]
        settings["port"] = _int(data, "port", 1, 65535, errors, "a port number 1-65535")
        if text["security"] not in SMTP_SECURITY:
            errors["security"] = f"one of {', '.join(SMTP_SECURITY)}"
        settings["security"] = text["security"]
        if len(text["login"]) > 200:
            errors["login"] = "up to 200 characters"
        settings["login"] = text["login"]
        if not re.fullmatch(r"[^@\s<>]{1,64}@[^@\s<>]{1,190}", text["sender"]) and \
                not re.fullmatch(r"[^<>]{0,100}<[^@\s<>]{1,64}@[^@\s<>]{1,190}>", text["sender"]):
            errors["sender"] = "an e-mail address (or Name <address>)"
        settings["sender"] = text["sender"]
    else:
        if not re.fullmatch(r"https?://[^\s]{1,480}", text["api_url"]):
            errors["api_url"] = "an http(s) URL"
        settings["api_url"] = text["api_url"].rstrip("/")
        if kind == "sms":
            if len(text["sender"]) > 11:
                errors["sender"] = "up to 11 characters (empty: the gateway's default)"
            settings["sender"] = text["sender"]
        else:
            name = text["bot_username"].lstrip("@")
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", name):
                errors["bot_username"] = "the bot's username (5-32 latin letters, digits, _)"
            settings["bot_username"] = name
    rate = _int(data, "rate", 1, 1000, errors, "1-1000 messages a second")
    timeout = _int(data, "timeout", 1, MAX_TIMEOUT, errors, "1-30 seconds")
    secret_field = SECRET_FIELD[kind]
    secret = str(data.get(secret_field) or "")
    current = row(kind)
    needs_secret = kind != "email" or bool(text["login"])
    if current is None and needs_secret and not secret:
        errors[secret_field] = "required"
    elif secret and (len(secret) > 300 or secret != secret.strip()):
        errors[secret_field] = "up to 300 characters, no spaces at the ends"
    if errors:
        raise BillingError(errors)
    before = values(current, kind) if current is not None else None
    r = current or NotificationChannel(kind=kind)
    r.settings, r.rate, r.timeout, r.enabled = settings, rate, timeout, bool(data.get("enabled"))
    r.demo_emulator, r.updated_at = demo_emulator, utcnow()
    if secret:
        r.secret_enc = encrypt(secret)
    if current is None:
        db.session.add(r)
    db.session.flush()
    audit.record(actor, "notification_channel.save", None, f"notification channel {kind}", before=before,
                 after={**values(r, kind), secret_field: "changed" if secret else "kept"}, object_type="system")
    return r
