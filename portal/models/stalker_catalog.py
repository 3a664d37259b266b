"""Stalker catalog tables: which billing tariffs were imported from which Stalker plans (by the
plan's external_id, free text), and which packages each plan holds, optional or mandatory.

A package's billing service is the catalog service with ``platform='stalker'`` and that
package's external_id (``CatalogService.external_id``); portal/platforms/stalker/catalog.py is
the one place that reads these tables."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow

EXTERNAL_ID_MAX = 64  # Stalker's plan and package external_id: any text up to 64 characters


class StalkerImportedTariff(db.Model):
    """A billing tariff imported from a Stalker plan, so that import may re-sync it and refuses
    an unrelated tariff. ``packages_known``: the import recorded the plan's packages (rows
    imported before issue 13 did not: their optional packages are unknown until a re-sync)."""

    __tablename__ = "stalker_imported_tariffs"

    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id", ondelete="CASCADE"), primary_key=True)
    plan_external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_MAX), unique=True)
    plan_name: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    packages_known: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class StalkerPlanPackage(db.Model):
    """A package of an imported plan. Optional: the subscriber may have it or not, and the
    tariff offers its billing service; mandatory: it comes with the plan (not a billing
    service of the tariff, never sent). One package may be optional in one plan and mandatory
    in another."""

    __tablename__ = "stalker_plan_packages"

    tariff_id: Mapped[int] = mapped_column(ForeignKey("stalker_imported_tariffs.tariff_id", ondelete="CASCADE"),
                                           primary_key=True)
    package_external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    optional: Mapped[bool] = mapped_column(Boolean)
