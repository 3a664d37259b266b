"""Subscriber cards and their contracts (the contract holds the money)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash

from ..extensions import db
from .base import Money, UTCDateTime, one_of, trigram_index, utcnow
from .staff import hash_password

SUBSCRIBER_KINDS = ("person", "company")
SUBSCRIBER_LANGUAGES = ("ru", "en")


class Subscriber(db.Model):
    __tablename__ = "subscribers"
    # the staff list searches these three as you type (portal/admin/lists.py)
    __table_args__ = (
        trigram_index("ix_subscribers_full_name_trgm", "full_name"),
        trigram_index("ix_subscribers_email_trgm", "email"),
        trigram_index("ix_subscribers_cabinet_login_trgm", "cabinet_login"),
        trigram_index("ix_subscribers_search_text_trgm", "search_text"),
        Index("ix_subscribers_full_name_id", "full_name", "id"),  # the list's name order (migration 7a18c6d4e5f7)
        one_of("kind", SUBSCRIBER_KINDS),
        one_of("language", SUBSCRIBER_LANGUAGES),
        # a bank statement's payer is matched by these (portal.billing.statements; migration c023b1c9dae2)
        Index("ix_subscribers_inn", "inn"),
        Index("ix_subscribers_bank_account", "bank_account"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")
    full_name: Mapped[str] = mapped_column(String(300))
    phones: Mapped[list] = mapped_column(JSON, default=list)
    email: Mapped[str | None] = mapped_column(String(200))
    postal_address: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    # the language of their messages (portal.notifications.templates) and of their cabinet
    language: Mapped[str] = mapped_column(String(2), default="ru", server_default="ru")
    inn: Mapped[str | None] = mapped_column(String(12))           # ИНН: 10 digits (company), 12 (person)
    bank_account: Mapped[str | None] = mapped_column(String(20))  # расчётный счёт the subscriber pays from
    cabinet_login: Mapped[str | None] = mapped_column(String(64), unique=True)
    cabinet_password_hash: Mapped[str | None] = mapped_column(String(255))
    # raised by a cabinet logout: every older session cookie is refused (self_service.session_key)
    cabinet_session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # name, phones, e-mail, logins and address folded for search (models/search.py keeps it)
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")

    contracts: Mapped[list[Contract]] = relationship(back_populates="subscriber", order_by="Contract.id")

    def set_cabinet_password(self, password: str) -> None:
        self.cabinet_password_hash = hash_password(password)

    def check_cabinet_password(self, password: str) -> bool:
        return bool(self.cabinet_password_hash) and check_password_hash(self.cabinet_password_hash, password)


class Contract(db.Model):
    __tablename__ = "contracts"
    __table_args__ = (
        trigram_index("ix_contracts_number_trgm", "number"),
        # H3: the lists find a contract, or a payment, by its number and its subscriber's search
        # text in one column of its own, without reading subscribers (migration 6a49b2c3d4e5)
        trigram_index("ix_contracts_search_text_trgm", "search_text"),
        # the staff list sorts by balance (keyset on balance, id)
        Index("ix_contracts_balance_id", "balance", "id"),
        Index("ix_contracts_number_id", "number", "id"),  # (and by number: migration 7a18c6d4e5f7)
        # the balance rule's grace pass reads the few contracts below their limit (billing.grace)
        Index("ix_contracts_below_limit_since", "below_limit_since",
              postgresql_where=text("below_limit_since IS NOT NULL"),
              sqlite_where=text("below_limit_since IS NOT NULL")),
        # H3: the "do not block" filter and its debt totals (1 contract in 100): a range of these
        Index("ix_contracts_do_not_block_balance_id", "balance", "id",
              postgresql_where=text("do_not_block"), sqlite_where=text("do_not_block")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    # The subscriber may go this far below zero before the balance block.
    credit_limit: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    do_not_block: Mapped[bool] = mapped_column(default=False)
    # "Do not block until" this day inclusive (BILLING_TZ); the balance rule ignores it after.
    do_not_block_until: Mapped[date | None] = mapped_column(Date)
    # Days below the limit before the balance block; NULL: the operator's rule (billing.grace).
    grace_days: Mapped[int | None] = mapped_column(Integer)
    # The first day (BILLING_TZ) of the present stretch below the limit; set and cleared by the
    # balance rule's statements (billing.blocking).
    below_limit_since: Mapped[date | None] = mapped_column(Date)
    # Cached ledger sum, changed only in SQL together with a ledger insert (portal.billing.ledger).
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # H3: its number and its subscriber's search text, folded (models/search.py keeps it, also
    # when the subscriber's card changes)
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")

    subscriber: Mapped[Subscriber] = relationship(back_populates="contracts")
    accounts: Mapped[list[Account]] = relationship(back_populates="contract", order_by="Account.id")  # noqa: F821
