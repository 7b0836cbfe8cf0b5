"""The credit ledger: every balance change and every AI call leaves a row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import AccountScoped, Base


class CreditTransaction(AccountScoped, Base):
    __tablename__ = "igny8_credit_transactions"
    # One ledger row per operation key makes retried debits idempotent.
    __table_args__ = (UniqueConstraint("account_id", "operation_key"),)
    transaction_type: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int]
    balance_after: Mapped[int]
    description: Mapped[str] = mapped_column(Text, default="")
    operation_key: Mapped[str | None] = mapped_column(String(120))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CreditUsageLog(AccountScoped, Base):
    __tablename__ = "igny8_credit_usage_logs"
    operation_type: Mapped[str] = mapped_column(String(50), index=True)
    credits_used: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))
    model_used: Mapped[str | None] = mapped_column(String(100))
    tokens_input: Mapped[int] = mapped_column(default=0)
    tokens_output: Mapped[int] = mapped_column(default=0)
    related_object_type: Mapped[str | None] = mapped_column(String(50))
    related_object_id: Mapped[int | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
