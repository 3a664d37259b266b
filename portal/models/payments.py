"""Payment agents (banks, terminal networks, aggregators) that pay into contracts over the
provider protocol, their payments and the record of their calls (portal/billing/agent_payments.py)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Money, UTCDateTime, utcnow

# What the agent sends as ``account``: the contract's number or an account's login.
ACCOUNT_FIELDS = ("contract", "login")
PROVIDER_COMMANDS = ("check", "pay", "other")
# The provider protocol's result codes that we answer (billing.agent_payments.RESULTS).
PROVIDER_RESULTS = (0, 1, 4, 5, 7, 241, 242, 300)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PaymentAgent(db.Model):
    """An agent staff allowed to pay in at /pay/provider/<slug>."""

    __tablename__ = "payment_agents"
    __table_args__ = (
        CheckConstraint(_in("account_field", ACCOUNT_FIELDS), name="account_field"),
        CheckConstraint("min_sum > 0", name="min_sum"),
        CheckConstraint("max_sum IS NULL OR max_sum >= min_sum", name="max_sum"),
        CheckConstraint("fee_percent_bp >= 0 AND fee_percent_bp <= 10000", name="fee_percent"),
        CheckConstraint("fee_fixed >= 0", name="fee_fixed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    account_field: Mapped[str] = mapped_column(String(16), default="contract")
    # allowed source networks as staff typed them (addresses or CIDR, comma or space separated)
    networks: Mapped[str] = mapped_column(String(1000), default="")
    # HTTP Basic password the agent sends (encrypted, billing/crypto.py); NULL: none asked
    secret_enc: Mapped[str | None] = mapped_column(String(500))
    min_sum: Mapped[Decimal] = mapped_column(Money, default=Decimal("1"))
    max_sum: Mapped[Decimal | None] = mapped_column(Money)
    # the agent's fee: hundredths of a percent (150 = 1.5 %) plus a fixed part, per payment
    fee_percent_bp: Mapped[int] = mapped_column(Integer, default=0)
    fee_fixed: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    # False (the usual agent contract): the contract gets the full sum, the fee is settled
    # with the agent apart; True: the fee is withheld from what the contract gets.
    fee_withheld: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def fee_percent(self) -> Decimal:
        return Decimal(self.fee_percent_bp or 0) / 100


class AgentPayment(db.Model):
    """One paid ``pay`` of an agent: ``id`` is the ``prv_txn`` we answer. Unique per
    (agent, txn_id), so a repeat or a parallel twin finds this row and moves no money. Its
    ledger entry is the one keyed ``agent:<agent_id>:<txn_id>`` (billing.agent_payments.ledger_key)."""

    __tablename__ = "agent_payments"
    __table_args__ = (
        UniqueConstraint("agent_id", "txn_id", name="uq_agent_payments_agent_txn"),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("fee >= 0", name="fee"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("payment_agents.id"))
    txn_id: Mapped[str] = mapped_column(String(64))
    # the agent's own time of the payment (txn_date, read in BILLING_TZ), in UTC
    txn_date: Mapped[datetime] = mapped_column(UTCDateTime)
    account: Mapped[str] = mapped_column(String(64))  # as the agent sent it
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)     # the sum paid
    fee: Mapped[Decimal] = mapped_column(Money)        # the agent's fee on it
    credited: Mapped[Decimal] = mapped_column(Money)   # what the contract got
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agent: Mapped[PaymentAgent] = relationship()


class ProviderCall(db.Model):
    """One authenticated call of an agent and our answer (bounded fields; pruned after
    billing.agent_payments.KEEP_DAYS by jobs/payments.py). Unauthenticated calls are not kept."""

    __tablename__ = "provider_calls"
    __table_args__ = (
        Index("ix_provider_calls_agent_id_id", "agent_id", "id"),
        Index("ix_provider_calls_agent_txn", "agent_id", "txn_id"),
        CheckConstraint(_in("command", PROVIDER_COMMANDS), name="command"),
        CheckConstraint(_in("result", PROVIDER_RESULTS), name="result"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("payment_agents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    remote_addr: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(8))
    # the parameters as sent, each cut to its column
    txn_id: Mapped[str | None] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(64))
    sum: Mapped[str | None] = mapped_column(String(32))
    txn_date: Mapped[str | None] = mapped_column(String(32))
    # the answer
    result: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    prv_txn: Mapped[int | None] = mapped_column(BigInteger)
    ms: Mapped[int | None] = mapped_column(Integer)

    agent: Mapped[PaymentAgent] = relationship()
