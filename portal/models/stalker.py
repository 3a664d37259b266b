"""Stalker (Ministra) tables: the TV IDs of billing accounts, the Stalker user each account is
bound to, STBs and channels registered in billing, and the console's snapshot of what Stalker
holds (refreshed by a worker job)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, one_of, trigram_index, utcnow


class StalkerTvId(db.Model):
    """An account's TV ID: its Stalker ``account_number`` (digits, under 12 characters).

    Without a row the TV ID is the account's id. ``login`` is the Stalker login when it differs
    from the billing login (an account added from Stalker whose login billing had taken)."""

    __tablename__ = "stalker_tv_ids"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    tv_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    login: Mapped[str | None] = mapped_column(String(64), unique=True)


BINDING_STATES = ("bound", "creating", "unbound")
BINDING_HOWS = ("created", "imported", "linked", "migrated")


class StalkerBinding(db.Model):
    """The Stalker user an account is bound to (portal/platforms/stalker/binding.py): every
    lookup, update, block and delete of the sync acts on that user only.

    ``state``: ``bound`` (``login``/``account_number``/``mac`` as Stalker last confirmed them),
    ``creating`` (a create was sent for ``login``/``account_number`` and not yet confirmed: a
    lost answer must not turn our own user into a stranger), ``unbound`` (nothing in Stalker is
    this account's; the row keeps the ``conflict`` found, a Stalker user billing must not take
    over, and ``new_login``, the login staff chose for creating one). ``how``: created,
    imported, linked (staff confirmed a user is this subscriber) or migrated (bound to the user
    the sync found before bindings existed). ``password_digest``: HMAC-SHA256 of the password
    last pushed (keyed with the app's SECRET_KEY), so that a password is sent only when it
    changed; never the password itself."""

    __tablename__ = "stalker_bindings"
    __table_args__ = (one_of("state", BINDING_STATES), one_of("how", BINDING_HOWS))

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="bound")
    login: Mapped[str | None] = mapped_column(String(64), unique=True)
    account_number: Mapped[str | None] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(17))
    how: Mapped[str] = mapped_column(String(16), default="created")
    new_login: Mapped[str | None] = mapped_column(String(64))
    password_digest: Mapped[str | None] = mapped_column(String(64))
    conflict: Mapped[dict | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StalkerStb(db.Model):
    """A set-top box registered in billing on an account (its MAC goes to Stalker as stb_mac)."""

    __tablename__ = "stalker_stbs"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    serial: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StalkerChannel(db.Model):
    """Billing's channel list, imported from Stalker (``id`` is Stalker's channel id)."""

    __tablename__ = "stalker_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    number: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    hd: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)


class StalkerSnapshotRow(db.Model):
    """One row of a console table as Stalker last returned it (``kind``: accounts, stb,
    channels, subscriptions, tariffs). ``search`` is the lower-cased text the search box
    matches with ``LIKE '%term%'`` (a trigram index serves it on PostgreSQL); ``data`` is the
    row exactly as Stalker sent it. Pages are keyset pages on (kind, id)."""

    __tablename__ = "stalker_snapshot_rows"
    __table_args__ = (Index("ix_stalker_snapshot_rows_kind_id", "kind", "id"),
                      trigram_index("ix_stalker_snapshot_rows_search_trgm", "search"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(100))
    search: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON)


class StalkerSnapshot(db.Model):
    """When each console table was last refreshed, how many rows, and the last error."""

    __tablename__ = "stalker_snapshots"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    columns: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
