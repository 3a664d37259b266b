"""Reselling through a selling BILLmanager: service handlers, imported tariffs, resold
services; and the small generic pieces they need: data centers, departments and tasks.

Departments and tasks are generic (any platform may open a task for a department); the
``bm_*`` tables belong to portal.platforms.billmanager.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, one_of, utcnow

TASK_STATES = ("open", "done")
# Our side of a resold service: waiting to be ordered (also after a short balance), the
# order call went out (its outcome is being established), ordered there, flagged for a
# person (the order's outcome is unknown), deleted.
BM_SERVICE_STATES = ("pending", "ordering", "ordered", "attention", "deleted")
# Why a pending order waits: its account is not active; the seller did not answer before the
# order call went out (nothing can have been spent there); the seller's balance could not be
# read; the balance is too low; the seller refused the order (staff restart it). All but the
# last are retried by themselves.
BM_WAIT_REASONS = ("account", "unreachable", "balance_unknown", "balance_low", "refused")


class Department(db.Model):
    """A team that gets tasks (e.g. "Hosting support")."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Task(db.Model):
    """Something a person must look at, assigned to a department, linked to its object.

    ``key`` (unique) makes opening the same task twice harmless while it is open."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_state_id", "state", "id"), one_of("state", TASK_STATES))

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))

    department: Mapped[Department | None] = relationship()


class DataCenter(db.Model):
    """Our own list of data centers (a handler says where its services run)."""

    __tablename__ = "data_centers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class BmHandler(db.Model):
    """A service handler: one product type sold through one account of a selling BILLmanager.
    The password is Fernet-encrypted and write-only."""

    __tablename__ = "bm_handlers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    itemtype: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(500))
    username: Mapped[str] = mapped_column(String(200))
    password_enc: Mapped[str | None] = mapped_column(Text)
    datacenter_id: Mapped[int | None] = mapped_column(ForeignKey("data_centers.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    sort: Mapped[int] = mapped_column(Integer, default=0)
    min_balance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    enabled: Mapped[bool] = mapped_column(default=True)
    last_balance: Mapped[Decimal | None] = mapped_column(Money)
    balance_currency: Mapped[str | None] = mapped_column(String(8))
    last_balance_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # the last pricelist.export read for the import wizard, and when
    pricelist: Mapped[list | None] = mapped_column(JSON)
    pricelist_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    datacenter: Mapped[DataCenter | None] = relationship()
    department: Mapped[Department | None] = relationship()


class BmTariff(db.Model):
    """A tariff imported from a selling price list. Ours to rename and reprice; orderable
    when enabled. Our monthly price is charged by the charge run through ``service``."""

    __tablename__ = "bm_tariffs"
    __table_args__ = (UniqueConstraint("handler_id", "remote_id", name="uq_bm_tariffs_handler_remote"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    handler_id: Mapped[int] = mapped_column(ForeignKey("bm_handlers.id"), index=True)
    remote_id: Mapped[str] = mapped_column(String(32))
    itemtype: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    remote_name: Mapped[str] = mapped_column(String(200))
    remote_datacenter: Mapped[str | None] = mapped_column(String(32))
    remote_datacenter_name: Mapped[str | None] = mapped_column(String(200))
    currency: Mapped[str | None] = mapped_column(String(8))
    # [{"months": 1, "cost": "150.00"}]: the seller's periods and costs
    periods: Mapped[list] = mapped_column(JSON, default=list)
    # [{"intname": "disk", "name": "...", "amount": "10", "measure": "GB"}]
    resources: Mapped[list] = mapped_column(JSON, default=list)
    price: Mapped[Decimal] = mapped_column(Money)
    enabled: Mapped[bool] = mapped_column(default=False)
    remote_active: Mapped[bool] = mapped_column(default=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("catalog_services.id"))
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    handler: Mapped[BmHandler] = relationship()

    def seller_cost(self, months: int = 1) -> Decimal | None:
        for p in self.periods or []:
            if int(p["months"]) == months:
                return Decimal(p["cost"])
        return None


class BmTariffHandler(db.Model):
    """A handler that may sell a tariff, in priority order (``position``, then id): set in the
    import wizard, editable on the tariff; orders use only these."""

    __tablename__ = "bm_tariff_handlers"
    __table_args__ = (UniqueConstraint("tariff_id", "handler_id", name="uq_bm_tariff_handlers_tariff_handler"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("bm_tariffs.id", ondelete="CASCADE"), index=True)
    handler_id: Mapped[int] = mapped_column(ForeignKey("bm_handlers.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    handler: Mapped[BmHandler] = relationship()


class BmService(db.Model):
    """A service we resell: our assigned service (charged by the charge run) and its twin on
    the selling side, ordered with ``remoteid`` = our id."""

    __tablename__ = "bm_services"
    __table_args__ = (Index("ix_bm_services_state", "state"), one_of("state", BM_SERVICE_STATES),
                      one_of("wait_reason", BM_WAIT_REASONS))

    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("bm_tariffs.id"), index=True)
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("bm_handlers.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    assigned_service_id: Mapped[int] = mapped_column(ForeignKey("assigned_services.id"), unique=True)
    domain: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    remote_id: Mapped[str | None] = mapped_column(String(32))
    remote_status: Mapped[int | None] = mapped_column(Integer)
    remote_status_msg: Mapped[str | None] = mapped_column(String(300))
    remote_expires: Mapped[date | None] = mapped_column(Date)
    remote_params: Mapped[dict | None] = mapped_column(JSON)
    # ids of the seller's services of this type just before the order call went out
    order_snapshot: Mapped[list | None] = mapped_column(JSON)
    order_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the first day of the last month renewed on the seller (the renewal key)
    renewed_period: Mapped[date | None] = mapped_column(Date)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    # the order form's one-time key: a double click or a resent form orders (and pays) once
    order_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # why a pending order waits (BM_WAIT_REASONS), how many tries failed in a row, and when the
    # retry sweep (orders.retry_due) hands it to the worker again; None: nothing scheduled
    wait_reason: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tariff: Mapped[BmTariff] = relationship()
    handler: Mapped[BmHandler | None] = relationship()
    account: Mapped[Account] = relationship()  # noqa: F821
    assigned: Mapped[AssignedService] = relationship()  # noqa: F821
