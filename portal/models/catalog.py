"""Reference data: agents, catalog services and tariffs."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, one_of

AGENT_KINDS = ("services", "radius", "netflow", "intercom", "iptv", "hosting")
CHARGE_PERIODS = ("month", "day")
CHARGE_MODES = ("monthly_advance", "daily_prorata")
IPTV_KINDS = ("basic", "additional")
TARIFF_KINDS = ("services", "internet")


class Agent(db.Model):
    """What serves an account: a kind of service and, if any, the platform behind it."""

    __tablename__ = "agents"
    __table_args__ = (one_of("kind", AGENT_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str | None] = mapped_column(String(32))


tariff_services = Table(
    "tariff_services",
    db.metadata,
    Column("tariff_id", ForeignKey("tariffs.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("catalog_services.id", ondelete="CASCADE"), primary_key=True),
)


class CatalogService(db.Model):
    __tablename__ = "catalog_services"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_catalog_services_platform_external"),
                      one_of("charge_period", CHARGE_PERIODS), one_of("charge_mode", CHARGE_MODES),
                      one_of("iptv_kind", IPTV_KINDS))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Money)
    charge_period: Mapped[str] = mapped_column(String(8), default="month")
    charge_mode: Mapped[str] = mapped_column(String(16), default="monthly_advance")
    platform: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(100))
    iptv_kind: Mapped[str | None] = mapped_column(String(16))


class Tariff(db.Model):
    __tablename__ = "tariffs"
    __table_args__ = (one_of("kind", TARIFF_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="services")
    monthly_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    is_multi: Mapped[bool] = mapped_column(default=False)
    # The monthly fee is charged through this hidden catalog service, so the one charge run
    # and the one set of charging rules cover tariffs and services alike.
    fee_service_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_services.id"))

    services: Mapped[list[CatalogService]] = relationship(secondary=tariff_services, order_by="CatalogService.id")
    fee_service: Mapped[CatalogService | None] = relationship(foreign_keys=[fee_service_id])
