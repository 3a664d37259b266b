"""The «Смотрёшка» settings, read from the connection's options (KEY=VALUE lines on the
connections page; ``flask platforms set smotreshka --option KEY=VALUE``).

The operator API authenticates us by our source address only (notes 1.1), so the
connection's login and password are not sent there: they are the HTTP Basic credentials the
platform must send on our upsale callbacks (none set: no Basic check).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULTS = {
    "login_prefix": "isp_",
    "email_template": "{account_id}@isp.users-mail.lfstrm.tv",
    "id_mode": "account_id",          # account_id | username (notes 1.2)
    "account_state": "off",           # push account-state v3 (notes 1.11)
    "account_state_url": "",          # default: the API URL
    "block_mode": "",                 # unsubscribe | account_state | both; default per account_state
    "upsale_allowed_ips": "127.0.0.1/32, ::1/128",
    "upsale_ttl": "900",              # seconds an ensure stays valid for its commit
    "self_service": "off",            # the cabinet's TV page (off until staff enable it)
    "public_url": "",                 # how the platform reaches the portal (the listen URLs)
    "page_size": "500",
    "platform_changes": "accept",     # accept | revert | report: a subscription switched off there (sync.py)
}
PLATFORM_CHANGES = ("accept", "revert", "report")
TRUE = ("1", "true", "yes", "on")


def _flag(value) -> bool:
    return value is True or str(value).strip().lower() in TRUE


@dataclass(frozen=True)
class Settings:
    login_prefix: str
    email_template: str
    id_mode: str
    account_state: bool
    account_state_url: str
    block_mode: str
    allowed_ips: tuple
    upsale_ttl: int
    self_service: bool
    public_url: str
    page_size: int
    platform_changes: str = "accept"

    @property
    def unsubscribe_on_block(self) -> bool:
        return self.block_mode in ("unsubscribe", "both")

    def username(self, login: str) -> str:
        return f"{self.login_prefix}{login}"

    def login_of(self, username: str) -> str | None:
        """Our account login from a platform username (None: not one of ours)."""
        if username and username.startswith(self.login_prefix):
            return username[len(self.login_prefix):] or None
        return None

    def ip_allowed(self, addr: str | None) -> bool:
        try:
            ip = ipaddress.ip_address((addr or "").split("%")[0])
        except ValueError:
            return False
        return any(ip in net for net in self.allowed_ips)


def parse_networks(text: str) -> tuple:
    nets = []
    for part in str(text or "").replace(";", ",").replace(" ", ",").split(","):
        if part.strip():
            try:
                nets.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                continue  # a typo must not open the door; the check job reports the setting
    return tuple(nets)


def from_options(options: dict | None) -> Settings:
    o = {**DEFAULTS, **{k: v for k, v in (options or {}).items() if v is not None}}
    account_state = _flag(o["account_state"])
    block_mode = str(o["block_mode"]).strip() or ("both" if account_state else "unsubscribe")
    if block_mode not in ("unsubscribe", "account_state", "both"):
        block_mode = "both" if account_state else "unsubscribe"
    try:
        ttl = max(60, int(o["upsale_ttl"]))
    except (TypeError, ValueError):
        ttl = 900
    try:
        page_size = max(10, int(o["page_size"]))
    except (TypeError, ValueError):
        page_size = 500
    platform_changes = str(o["platform_changes"]).strip().lower()
    if platform_changes not in PLATFORM_CHANGES:
        platform_changes = "report"  # a typo must neither end services nor undo the platform's changes
    return Settings(
        login_prefix=str(o["login_prefix"]), email_template=str(o["email_template"]),
        id_mode="username" if str(o["id_mode"]).strip() == "username" else "account_id",
        account_state=account_state, account_state_url=str(o["account_state_url"] or "").strip(),
        block_mode=block_mode, allowed_ips=parse_networks(o["upsale_allowed_ips"]),
        upsale_ttl=ttl, self_service=_flag(o["self_service"]), public_url=str(o["public_url"] or "").strip(),
        page_size=page_size, platform_changes=platform_changes,
    )


def load() -> Settings:
    """The settings of the stored connection (defaults when there is none)."""
    from sqlalchemy import select

    from ...extensions import db
    from ...models import PlatformConnection

    row = db.session.scalar(select(PlatformConnection).filter_by(kind="smotreshka"))
    return from_options(row.options if row is not None else None)


RESYNC_TIMES = "04:20,16:20"  # SMOTRESHKA_RESYNC_TIMES: Lifestream recommends 1-3 re-syncs a day (notes 3.3)


def resync_crons(config) -> list[str]:
    """Cron lines of the 1-3 scheduled re-syncs a day at SMOTRESHKA_RESYNC_TIMES (HH:MM, comma
    separated, BILLING_TZ; jobs/schedules.py), by default 04:20 and 16:20. A time that is no
    HH:MM is left out."""
    out = []
    times = config.get("SMOTRESHKA_RESYNC_TIMES")
    if times is None:
        times = RESYNC_TIMES
    for hhmm in [t.strip() for t in str(times).split(",") if t.strip()][:3]:
        hh, _, mm = hhmm.partition(":")
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            out.append(f"{int(mm)} {int(hh)} * * *")
    return out
