"""Accounts (what a subscriber uses), their extra fields and assigned services."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, one_of, trigram_index, utcnow
from .catalog import Agent, CatalogService, Tariff

ACCOUNT_STATUSES = ("inactive", "active", "blocked", "disabled")
# Block reasons are a bit set, so "blocked only by balance" is one comparison in SQL.
BLOCK_REASONS = {"balance": 1, "manager": 2, "subscriber": 4}
SERVICE_STATES = ("active", "suspended", "ended")
EXTRA_FIELD_TYPES = ("string", "integer", "boolean")

account_multi_tariffs = Table(
    "account_multi_tariffs",
    db.metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("tariff_id", ForeignKey("tariffs.id"), primary_key=True),
)


class Account(db.Model):
    __tablename__ = "accounts"
    # the staff list searches login and address as you type (portal/admin/lists.py)
    __table_args__ = (
        trigram_index("ix_accounts_login_trgm", "login"),
        trigram_index("ix_accounts_house_trgm", "house"),
        trigram_index("ix_accounts_search_text_trgm", "search_text"),
        Index("ix_accounts_login_id", "login", "id"),  # the list's login order (migration 7a18c6d4e5f7)
        one_of("status", ACCOUNT_STATUSES),
        CheckConstraint(f"block_reasons >= 0 AND block_reasons <= {sum(BLOCK_REASONS.values())}",
                        name="block_reasons"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    # The service password is sent to platforms, so it is stored encrypted, not hashed.
    password_enc: Mapped[str | None] = mapped_column(String(500))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariffs.id"), index=True)
    house: Mapped[str | None] = mapped_column(String(300))
    flat: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="inactive", index=True)
    block_reasons: Mapped[int] = mapped_column(Integer, default=0)
    # Local (BILLING_TZ) date since which the status and block reasons hold: charging starts or
    # stops there.
    status_changed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # login and address (with the flat as "кв. N") folded for search (models/search.py keeps it)
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")

    contract: Mapped[Contract] = relationship(back_populates="accounts")  # noqa: F821
    agent: Mapped[Agent] = relationship()
    tariff: Mapped[Tariff | None] = relationship()
    multi_tariffs: Mapped[list[Tariff]] = relationship(secondary=account_multi_tariffs, order_by="Tariff.id")
    services: Mapped[list[AssignedService]] = relationship(
        back_populates="account", order_by="AssignedService.id"
    )
    extra_values: Mapped[list[ExtraFieldValue]] = relationship(
        back_populates="account", cascade="all, delete-orphan"
    )

    @property
    def reasons(self) -> list[str]:
        return [name for name, bit in BLOCK_REASONS.items() if self.block_reasons & bit]

    @property
    def extra(self) -> dict[str, str]:
        return {v.field.name: v.value for v in self.extra_values}


class ExtraFieldDefinition(db.Model):
    """A field staff declare for accounts (e.g. isvyaz_login), with its type and validation."""

    __tablename__ = "extra_field_definitions"
    __table_args__ = (one_of("type", EXTRA_FIELD_TYPES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="string")
    pattern: Mapped[str | None] = mapped_column(String(300))
    required: Mapped[bool] = mapped_column(default=False)


class ExtraFieldValue(db.Model):
    __tablename__ = "extra_field_values"
    __table_args__ = (UniqueConstraint("account_id", "field_id", name="uq_extra_field_values_account_field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    field_id: Mapped[int] = mapped_column(ForeignKey("extra_field_definitions.id"))
    value: Mapped[str] = mapped_column(String(500))

    account: Mapped[Account] = relationship(back_populates="extra_values")
    field: Mapped[ExtraFieldDefinition] = relationship()


class AssignedService(db.Model):
    __tablename__ = "assigned_services"
    __table_args__ = (
        Index("ix_assigned_services_state", "state"),
        # One live copy of a catalog service per account (billing.accounts.assign_service checks it
        # under the account's lock; this refuses whatever slips past). Per-order services (one
        # hosting order each) may repeat.
        Index("uq_assigned_services_live", "account_id", "service_id", unique=True,
              sqlite_where=text("state != 'ended' AND per_order = 0"),
              postgresql_where=text("state <> 'ended' AND NOT per_order")),
        one_of("state", SERVICE_STATES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_services.id"), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    # Last day the service is in force (inclusive); NULL = no expiry.
    ends_on: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), default="active")
    state_changed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # An instance per order (a hosting order), not "the" service of the account: may repeat.
    per_order: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The one-time key of the request that assigned it (a cabinet form's, an upsale
    # transaction's): a repeat of that request finds this service instead of buying again.
    order_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    account: Mapped[Account] = relationship(back_populates="services")
    service: Mapped[CatalogService] = relationship()
