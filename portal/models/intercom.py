"""«Интерсвязь» intercom: the platform profiles we know and where each account's address may be.

* ``IntercomProfile``: a profile (by its login, the account's ``isvyaz_login``) that our
  accounts are on, whether we created it (then we delete it once its last address has gone)
  or only linked it (then we leave it alone), and the profile as the platform showed it at
  the last read (name, phones, addresses with their access), for the admin's drift view.
* ``IntercomAttachment``: "account X's address may be on profile L". Written *before* the
  address is put on the profile and removed only once the platform confirmed it is gone, so
  that a changed ``isvyaz_login`` (or a failure half-way) never leaves an address behind.

Written only by the intercom sync (portal/platforms/intercom/sync.py), under the Redis lock
of the profile, in short transactions of their own.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class IntercomProfile(db.Model):
    __tablename__ = "intercom_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_us: Mapped[bool] = mapped_column(default=False)
    full_name: Mapped[str | None] = mapped_column(String(300))
    phones: Mapped[list] = mapped_column(JSON, default=list)
    # [{account_id, house_id, flat, access: {...}}] as the platform had them at checked_at
    addresses: Mapped[list] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IntercomAttachment(db.Model):
    __tablename__ = "intercom_attachments"
    __table_args__ = (UniqueConstraint("account_id", "login", name="uq_intercom_attachments_account_login"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    login: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
