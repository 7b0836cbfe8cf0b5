"""Credits: the seed's CreditService as a ledger, plus the billing module's actions.

Every balance change is one atomic conditional UPDATE (``credits = credits - n WHERE credits >= n``,
never read-modify-write) and one ``CreditTransaction`` row carrying ``balance_after``. An optional
operation key makes a change idempotent: a retried debit with the same key charges once. Long
operations reserve up front in their own transaction, then settle what they used and refund the rest,
also when they fail.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.exceptions import InsufficientCredits, PlanLimitExceeded, ValidationFailed
from storage.models import (
    Account,
    Cluster,
    ContentIdea,
    CreditTransaction,
    CreditUsageLog,
    Keyword,
    Plan,
    Role,
    Site,
    User,
)
from storage.tenancy import ACCOUNT_WIDE, TenantContext, tenant_of
from tools.common import ObjectOut, Page, PageInput, order_by, paginate
from tools.registry import ALL_ROLES, ActionContext, ActionInput, NoInput, Route, action

MODULE = "billing"


class TransactionType(StrEnum):
    PURCHASE = "purchase"
    USAGE = "usage"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class CreditCost:
    credits: int
    unit: str
    unit_size: int = 1

    def for_units(self, units: int) -> int:
        return self.credits * math.ceil(max(units, 0) / self.unit_size)


# The one table of prices; the README renders the same numbers.
CREDIT_COSTS: dict[str, CreditCost] = {
    "clustering": CreditCost(1, "keywords", 20),
    "idea_generation": CreditCost(5, "cluster"),
    "content_generation": CreditCost(1, "words", 100),
    "image_prompt_extraction": CreditCost(2, "article"),
    "image_generation": CreditCost(5, "image"),
    "linking": CreditCost(2, "article"),
    "optimization": CreditCost(1, "words", 200),
    "site_structure_generation": CreditCost(50, "blueprint"),
    "site_page_generation": CreditCost(20, "page"),
}


def credits_for(operation: str, units: int) -> int:
    try:
        return CREDIT_COSTS[operation].for_units(units)
    except KeyError:
        raise ValueError(f"no credit cost declared for operation {operation!r}") from None


class LedgerEntry(ObjectOut):
    id: int
    transaction_type: TransactionType
    amount: int
    balance_after: int
    description: str
    operation_key: str | None
    created_at: datetime


async def balance(session: AsyncSession, account_id: int | None = None) -> int:
    account_id = account_id or tenant_of(session.sync_session).account_id
    value = await session.scalar(select(Account.credits).where(Account.id == account_id))
    if value is None:
        raise ValidationFailed.single("account_id", f"account {account_id} not found")
    return value


async def _existing(session: AsyncSession, account_id: int, key: str | None) -> CreditTransaction | None:
    if key is None:
        return None
    return await session.scalar(
        select(CreditTransaction).where(
            CreditTransaction.account_id == account_id, CreditTransaction.operation_key == key
        )
    )


async def _change(
    session: AsyncSession,
    *,
    delta: int,
    kind: TransactionType,
    description: str,
    key: str | None,
    details: dict[str, Any] | None,
    account_id: int | None,
) -> CreditTransaction:
    account_id = account_id or tenant_of(session.sync_session).account_id
    if (done := await _existing(session, account_id, key)) is not None:
        return done
    try:
        async with session.begin_nested():
            stmt = update(Account).where(Account.id == account_id)
            if delta < 0:
                stmt = stmt.where(Account.credits >= -delta)
            new_balance = await session.scalar(
                stmt.values(credits=Account.credits + delta)
                .returning(Account.credits)
                .execution_options(synchronize_session=False)
            )
            if new_balance is None:
                raise InsufficientCredits(-delta, await balance(session, account_id))
            entry = CreditTransaction(
                account_id=account_id,
                transaction_type=kind,
                amount=delta,
                balance_after=new_balance,
                description=description,
                operation_key=key,
                details=details or {},
            )
            session.add(entry)
            await session.flush()
            return entry
    except IntegrityError:
        # Another request with the same key won the race; its change stands, ours rolled back.
        if (done := await _existing(session, account_id, key)) is not None:
            return done
        raise


async def deduct(
    session: AsyncSession,
    *,
    credits: int,
    operation: str,
    description: str = "",
    key: str | None = None,
    details: dict[str, Any] | None = None,
    account_id: int | None = None,
) -> CreditTransaction:
    """Take ``credits`` or raise InsufficientCredits; never lets the balance go below zero."""
    if credits < 0:
        raise ValueError("deduct a positive amount")
    return await _change(
        session,
        delta=-credits,
        kind=TransactionType.USAGE,
        description=description or operation,
        key=key,
        details={"operation": operation, **(details or {})},
        account_id=account_id,
    )


async def add(
    session: AsyncSession,
    *,
    credits: int,
    kind: TransactionType = TransactionType.PURCHASE,
    description: str = "",
    key: str | None = None,
    details: dict[str, Any] | None = None,
    account_id: int | None = None,
) -> CreditTransaction:
    if credits < 0:
        raise ValueError("add a non-negative amount")
    return await _change(
        session,
        delta=credits,
        kind=kind,
        description=description or kind,
        key=key,
        details=details,
        account_id=account_id,
    )


async def log_usage(
    session: AsyncSession,
    *,
    operation: str,
    credits: int,
    model: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: Decimal = Decimal(0),
    related: tuple[str, int] | None = None,
    details: dict[str, Any] | None = None,
) -> CreditUsageLog:
    entry = CreditUsageLog(
        operation_type=operation,
        credits_used=credits,
        model_used=model or None,
        tokens_input=input_tokens,
        tokens_output=output_tokens,
        cost_usd=cost_usd,
        related_object_type=related[0] if related else None,
        related_object_id=related[1] if related else None,
        details=details or {},
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass
class Reservation:
    """Credits held for a long operation; ``used`` grows as items succeed."""

    operation: str
    reserved: int
    key: str
    used: int = 0

    def use(self, credits: int) -> None:
        self.used = min(self.reserved, self.used + credits)


async def _open_attempt(session: AsyncSession, key: str) -> tuple[int, int | None]:
    """The attempt number to use for ``key`` and, if that attempt already holds credits, how many.

    An attempt that reserved but never settled (its process died) is resumed, so a retried job is
    not charged twice; once an attempt has settled, the next run of the same key is a new attempt.
    """
    rows = (
        await session.execute(
            select(CreditTransaction.operation_key, CreditTransaction.amount).where(
                CreditTransaction.operation_key.startswith(f"{key}:", autoescape=True)
            )
        )
    ).all()
    reserved = {k.rsplit(":", 1)[1]: -amount for k, amount in rows if k.startswith(f"{key}:reserve:")}
    settled = {k.rsplit(":", 1)[1] for k, _ in rows if k.startswith(f"{key}:settle:")}
    attempts = sorted(int(n) for n in reserved)
    if attempts and str(attempts[-1]) not in settled:
        return attempts[-1], reserved[str(attempts[-1])]
    return (attempts[-1] + 1 if attempts else 1), None


@asynccontextmanager
async def reserve(
    db: Database, tenant: TenantContext, *, operation: str, credits: int, key: str, description: str = ""
) -> AsyncIterator[Reservation]:
    """Hold credits before work starts; on exit settle: refund whatever was not used, even on failure.

    The hold and the settlement each commit on their own, so neither is lost with the work's own
    transactions. Both carry keys derived from ``key`` and the attempt number, which makes a retry
    of a crashed run reuse its hold instead of charging again.
    """
    async with db.transaction(tenant) as session:
        attempt, held_already = await _open_attempt(session, key)
        if held_already is None:
            await deduct(
                session,
                credits=credits,
                operation=operation,
                key=f"{key}:reserve:{attempt}",
                description=description or f"{operation} (reserved)",
            )
    held = Reservation(operation, credits if held_already is None else held_already, key)
    try:
        yield held
    finally:
        unused = held.reserved - held.used
        async with db.transaction(tenant) as session:
            await add(
                session,
                credits=unused,
                kind=TransactionType.REFUND,
                key=f"{key}:settle:{attempt}",
                description=f"{operation}: {held.used} of {held.reserved} reserved credits used",
                details={"operation": operation, "reserved": held.reserved, "used": held.used},
            )


# --- plan limits -------------------------------------------------------------------------------

_COUNTED = {
    "sites": (Site, "max_sites"),
    "users": (User, "max_users"),
    "keywords": (Keyword, "max_keywords"),
    "clusters": (Cluster, "max_clusters"),
    "ideas": (ContentIdea, "max_content_ideas"),
}
# Monthly resources: plan limit, and the CreditUsageLog detail key that measures them (None: count calls).
_MONTHLY = {
    "ai_requests": ("max_ai_requests_per_month", None),
    "words": ("max_words_per_month", "words"),
    "images": ("max_images_per_month", "images"),
}


async def _plan(session: AsyncSession) -> Plan | None:
    account = await session.get(Account, tenant_of(session.sync_session).account_id)
    return await session.get(Plan, account.plan_id) if account and account.plan_id else None


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _current(session: AsyncSession, resource: str) -> int:
    """Usage of ``resource`` by the whole account, whatever the caller's own site grants."""
    account_id = tenant_of(session.sync_session).account_id
    if resource in _COUNTED:
        model = _COUNTED[resource][0]
        stmt = select(func.count(model.id)).where(model.account_id == account_id)
        return await session.scalar(stmt.execution_options(**{ACCOUNT_WIDE: True})) or 0
    detail_key = _MONTHLY[resource][1]
    if detail_key is None:
        return (
            await session.scalar(
                select(func.count(CreditUsageLog.id)).where(
                    CreditUsageLog.account_id == account_id, CreditUsageLog.created_at >= month_start()
                )
            )
            or 0
        )
    return await _monthly_units(session, account_id, detail_key)


async def ensure_within_plan(session: AsyncSession, resource: str, adding: int) -> None:
    """Refuse work that would take the account past its plan's limit for ``resource``."""
    plan = await _plan(session)
    if plan is None or adding < 0:
        return
    limit_name = _COUNTED[resource][1] if resource in _COUNTED else _MONTHLY[resource][0]
    limit = getattr(plan, limit_name)
    if limit is None:
        return
    current = await _current(session, resource)
    if current + adding > limit:
        per = " per month" if resource in _MONTHLY else ""
        raise PlanLimitExceeded(
            f"Your {plan.name} plan allows {limit} {resource.replace('_', ' ')}{per}; "
            f"you have {current} and this adds {adding}. Upgrade the plan or remove some first.",
            details={"resource": resource, "limit": limit, "current": current, "adding": adding},
        )


async def _monthly_units(session: AsyncSession, account_id: int, detail_key: str) -> int:
    rows = await session.scalars(
        select(CreditUsageLog.details).where(
            CreditUsageLog.account_id == account_id, CreditUsageLog.created_at >= month_start()
        )
    )
    return sum(int((d or {}).get(detail_key, 0)) for d in rows.all())


# --- actions -----------------------------------------------------------------------------------


class BalanceOut(BaseModel):
    credits: int
    plan: str | None
    plan_credits_per_month: int | None
    used_this_month: int
    costs: dict[str, str] = Field(description="Credits per operation")


@action(
    "billing.balance",
    module=MODULE,
    summary="Show your credit balance, plan and this month's usage",
    roles=ALL_ROLES,
    route=Route("GET", "billing/balance/"),
)
async def get_balance(ctx: ActionContext, params: NoInput) -> BalanceOut:
    plan = await _plan(ctx.session)
    used = await ctx.session.scalar(
        select(func.coalesce(func.sum(CreditUsageLog.credits_used), 0)).where(
            CreditUsageLog.created_at >= month_start()
        )
    )
    return BalanceOut(
        credits=await balance(ctx.session),
        plan=plan.slug if plan else None,
        plan_credits_per_month=plan.effective_credits_per_month() if plan else None,
        used_this_month=used or 0,
        costs={
            op: f"{c.credits} per {c.unit_size if c.unit_size > 1 else ''} {c.unit}".replace("  ", " ")
            for op, c in CREDIT_COSTS.items()
        },
    )


class TransactionsInput(PageInput):
    transaction_type: TransactionType | None = None


@action(
    "billing.transactions",
    module=MODULE,
    summary="List credit transactions (purchases, usage, refunds)",
    roles=ALL_ROLES,
    route=Route("GET", "billing/transactions/"),
)
async def list_transactions(ctx: ActionContext, params: TransactionsInput) -> Page[LedgerEntry]:
    stmt = select(CreditTransaction)
    if params.transaction_type:
        stmt = stmt.where(CreditTransaction.transaction_type == params.transaction_type)
    stmt = order_by(
        stmt,
        params.ordering,
        {"created_at": CreditTransaction.created_at, "amount": CreditTransaction.amount},
        "-created_at",
        CreditTransaction.id,
    )
    return await paginate(ctx.session, stmt, params, lambda row: LedgerEntry.model_validate(row[0]))


class UsageOut(ObjectOut):
    id: int
    operation_type: str
    credits_used: int
    cost_usd: Decimal
    model_used: str | None
    tokens_input: int
    tokens_output: int
    related_object_type: str | None
    related_object_id: int | None
    created_at: datetime


class UsagePage(Page[UsageOut]):
    total_credits: int
    total_cost_usd: Decimal
    total_tokens: int


class UsageInput(PageInput):
    operation_type: str | None = Field(None, description=f"One of: {', '.join(CREDIT_COSTS)}")
    period: Literal["today", "this_month", "last_30_days", "all"] = "this_month"
    start: datetime | None = Field(None, description="Overrides period: from this time (ISO 8601)")
    end: datetime | None = Field(None, description="Until this time (ISO 8601)")


def _period_start(period: str) -> datetime | None:
    now = datetime.now(UTC)
    return {
        "today": now.replace(hour=0, minute=0, second=0, microsecond=0),
        "this_month": month_start(now),
        "last_30_days": now - timedelta(days=30),
    }.get(period)


@action(
    "billing.usage",
    module=MODULE,
    summary="AI usage log with credits, tokens and cost, by period",
    roles=ALL_ROLES,
    route=Route("GET", "billing/usage/"),
)
async def list_usage(ctx: ActionContext, params: UsageInput) -> UsagePage:
    stmt = select(CreditUsageLog)
    start = params.start or _period_start(params.period)
    if start is not None:
        stmt = stmt.where(CreditUsageLog.created_at >= start)
    if params.end is not None:
        stmt = stmt.where(CreditUsageLog.created_at < params.end)
    if params.operation_type:
        stmt = stmt.where(CreditUsageLog.operation_type == params.operation_type)
    logs = stmt.subquery()
    totals = (
        await ctx.session.execute(
            select(
                func.coalesce(func.sum(logs.c.credits_used), 0),
                func.coalesce(func.sum(logs.c.cost_usd), 0),
                func.coalesce(func.sum(logs.c.tokens_input + logs.c.tokens_output), 0),
            )
        )
    ).one()
    ordered = order_by(
        stmt,
        params.ordering,
        {"created_at": CreditUsageLog.created_at, "credits_used": CreditUsageLog.credits_used},
        "-created_at",
        CreditUsageLog.id,
    )
    page = await paginate(ctx.session, ordered, params, lambda row: UsageOut.model_validate(row[0]))
    return UsagePage(
        **page.model_dump(),
        total_credits=totals[0],
        total_cost_usd=Decimal(totals[1]),
        total_tokens=totals[2],
    )


class AddCreditsInput(ActionInput):
    credits: int = Field(gt=0, le=10_000_000)
    account_id: int | None = Field(None, description="Account to credit (default: your own)")
    description: str = "Credits added by an administrator"
    operation_key: str | None = Field(None, max_length=100, description="Makes a retry add only once")


@action(
    "billing.add_credits",
    module=MODULE,
    summary="Add credits to an account (platform administrators)",
    roles=frozenset({Role.DEVELOPER, Role.SYSTEM_BOT}),
    route=Route("POST", "billing/credits/add/"),
)
async def add_credits(ctx: ActionContext, params: AddCreditsInput) -> LedgerEntry:
    entry = await add(
        ctx.session,
        credits=params.credits,
        kind=TransactionType.ADJUSTMENT,
        description=params.description,
        key=params.operation_key,
        account_id=params.account_id or ctx.tenant.account_id,
    )
    return LedgerEntry.model_validate(entry)
