"""Online payments from the cabinet through a payment service (ЮKassa): the shop connection and
each payment's record (portal/billing/online_payments.py decides, portal/payments/yookassa talks)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, utcnow

# Our record's state: "new" until the service answered the create (or "failed" if it did not),
# then the service's own status as last read back from it.
ONLINE_PAYMENT_STATES = ("new", "failed", "pending", "waiting_for_capture", "succeeded", "canceled")
# 54-ФЗ VAT codes of ЮKassa's receipts (1 без НДС, 2 0 %, 3 10 %, 4 20 %, 5 10/110, 6 20/120,
# 7 5 %, 8 7 %, 9 5/105, 10 7/107)
VAT_CODES = tuple(range(1, 11))


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class OnlineShop(db.Model):
    """The operator's shop at the payment service (one per service; ``kind`` names it)."""

    __tablename__ = "online_shops"
    __table_args__ = (
        CheckConstraint("kind IN ('yookassa')", name="kind"),
        CheckConstraint(_in("vat_code", VAT_CODES), name="vat_code"),
        CheckConstraint("min_sum > 0", name="min_sum"),
        CheckConstraint("max_sum >= min_sum", name="max_sum"),
        CheckConstraint("timeout > 0 AND timeout <= 60", name="timeout"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), unique=True, default="yookassa")
    api_url: Mapped[str] = mapped_column(String(500), default="https://api.yookassa.ru/v3")
    # Both encrypted with billing/crypto.py (a database dump names no shop). The shop id is read
    # back for the service's HTTP Basic login and the admins' settings form; the secret only for
    # the login, never shown back. Neither goes to the audit or the logs.
    shop_id_enc: Mapped[str] = mapped_column(String(500))
    secret_enc: Mapped[str] = mapped_column(String(500))
    vat_code: Mapped[int] = mapped_column(Integer, default=1)
    receipt: Mapped[bool] = mapped_column(default=True)   # send 54-ФЗ receipt data with each payment
    payment_subject: Mapped[str] = mapped_column(String(32), default="service")
    payment_mode: Mapped[str] = mapped_column(String(32), default="full_prepayment")
    min_sum: Mapped[Decimal] = mapped_column(Money, default=Decimal("10"))
    max_sum: Mapped[Decimal] = mapped_column(Money, default=Decimal("15000"))
    timeout: Mapped[int] = mapped_column(Integer, default=10)   # seconds per call to the service
    enabled: Mapped[bool] = mapped_column(default=True)
    demo_emulator: Mapped[bool] = mapped_column(default=False)  # `make run` points it at its emulator
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OnlinePayment(db.Model):
    """One payment a subscriber started. ``idempotence_key`` is what we sent as Idempotence-Key;
    ``payment_id`` the service's id once it answered. Its ledger entry is keyed
    ``yookassa:<payment_id>`` (billing.online_payments.ledger_key): credited once."""

    __tablename__ = "online_payments"
    __table_args__ = (
        CheckConstraint(_in("state", ONLINE_PAYMENT_STATES), name="state"),
        CheckConstraint("amount > 0", name="amount"),
        Index("ix_online_payments_contract_id_id", "contract_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("online_shops.id"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    idempotence_key: Mapped[str] = mapped_column(String(64), unique=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[str] = mapped_column(String(24), default="new")
    confirmation_url: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(Text)   # why it failed or was not credited
    actor: Mapped[str] = mapped_column(String(100))   # who started it (cabinet:<login>)
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last read back from the service

    contract = relationship("Contract")
    shop: Mapped[OnlineShop] = relationship()
