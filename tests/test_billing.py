"""The credit ledger: atomic debits under concurrency, idempotency, reservations and refunds."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from storage.exceptions import InsufficientCredits, PermissionDenied, PlanLimitExceeded
from storage.models import Account, CreditTransaction, Role
from storage.tenancy import TenantContext
from tools import billing


async def _ledger(db, tenant):
    async with db.transaction(tenant.owner) as s:
        rows = (await s.scalars(select(CreditTransaction).order_by(CreditTransaction.id))).all()
        balance = await s.scalar(select(Account.credits))
    return rows, balance


async def test_concurrent_debits_never_overdraw(db, tenants):
    tenant = await tenants.create(credits=150)

    async def debit(n: int) -> bool:
        try:
            async with db.transaction(tenant.owner) as s:
                await billing.deduct(s, credits=1, operation="clustering", key=f"op-{n}")
            return True
        except InsufficientCredits:
            return False

    outcomes = await asyncio.gather(*(debit(n) for n in range(200)))
    rows, balance = await _ledger(db, tenant)
    assert sum(outcomes) == 150 and balance == 0
    assert len(rows) == 150 and sum(r.amount for r in rows) == -150
    assert sorted(r.balance_after for r in rows) == list(range(150))


async def test_same_operation_key_charges_once(db, tenants):
    tenant = await tenants.create(credits=10)
    for _ in range(3):
        async with db.transaction(tenant.owner) as s:
            entry = await billing.deduct(s, credits=4, operation="clustering", key="retry-me")
    rows, balance = await _ledger(db, tenant)
    assert balance == 6 and len(rows) == 1 and entry.id == rows[0].id


async def test_concurrent_retries_with_one_key_charge_once(db, tenants):
    tenant = await tenants.create(credits=10)

    async def debit() -> None:
        async with db.transaction(tenant.owner) as s:
            await billing.deduct(s, credits=3, operation="clustering", key="same")

    await asyncio.gather(*(debit() for _ in range(10)))
    rows, balance = await _ledger(db, tenant)
    assert balance == 7 and len(rows) == 1


async def test_insufficient_credits_changes_nothing(db, tenants):
    tenant = await tenants.create(credits=2)
    with pytest.raises(InsufficientCredits) as err:
        async with db.transaction(tenant.owner) as s:
            await billing.deduct(s, credits=5, operation="clustering")
    assert err.value.details == {"needed": 5, "balance": 2}
    rows, balance = await _ledger(db, tenant)
    assert balance == 2 and rows == []


async def test_reservation_refunds_unused_and_everything_on_failure(db, tenants):
    tenant = await tenants.create(credits=100)
    async with billing.reserve(
        db, tenant.owner, operation="content_generation", credits=30, key="job-1"
    ) as held:
        held.use(12)
    _, balance = await _ledger(db, tenant)
    assert balance == 88

    with pytest.raises(RuntimeError):
        async with billing.reserve(db, tenant.owner, operation="content_generation", credits=50, key="job-2"):
            raise RuntimeError("provider exploded")
    rows, balance = await _ledger(db, tenant)
    assert balance == 88
    assert [(r.transaction_type, r.amount) for r in rows] == [
        ("usage", -30),
        ("refund", 18),
        ("usage", -50),
        ("refund", 50),
    ]
    assert rows[-1].balance_after == 88


async def test_a_crashed_run_retried_with_its_key_is_not_charged_twice(db, tenants):
    tenant = await tenants.create(credits=100)
    async with db.transaction(tenant.owner) as s:  # a run that reserved, then its process died
        await billing.deduct(s, credits=10, operation="clustering", key="job-x:reserve:1")
    async with billing.reserve(db, tenant.owner, operation="clustering", credits=10, key="job-x") as held:
        assert held.reserved == 10
        held.use(4)
    rows, balance = await _ledger(db, tenant)
    assert balance == 96 and [r.amount for r in rows] == [-10, 6]

    async with billing.reserve(db, tenant.owner, operation="clustering", credits=10, key="job-x") as held:
        held.use(10)  # the key's run had settled, so this is a new attempt and pays for itself
    rows, balance = await _ledger(db, tenant)
    assert balance == 86 and [r.operation_key for r in rows[2:]] == ["job-x:reserve:2", "job-x:settle:2"]


async def test_balance_transactions_usage_actions(tenants):
    tenant = await tenants.create(credits=40)
    async with tenant.db.transaction(tenant.owner) as s:
        await billing.deduct(s, credits=5, operation="clustering")
        await billing.log_usage(
            s, operation="clustering", credits=5, model="m", input_tokens=10, output_tokens=3
        )
    out = await tenant.run("billing.balance")
    assert out.credits == 35 and out.used_this_month == 5 and out.plan == "scale"
    assert "clustering" in out.costs
    txs = await tenant.run("billing.transactions")
    assert [t.amount for t in txs.results] == [-5]
    usage = await tenant.run("billing.usage", operation_type="clustering")
    assert usage.total_credits == 5 and usage.total_tokens == 13 and usage.count == 1
    assert (await tenant.run("billing.usage", operation_type="image_generation")).count == 0


async def test_only_platform_admins_add_credits(db, tenants):
    tenant = await tenants.create(credits=0)
    with pytest.raises(PermissionDenied):
        await tenant.run("billing.add_credits", credits=100)
    dev = TenantContext(account_id=tenant.account_id, user_id=None, role=Role.DEVELOPER)
    entry = await tenant.run(
        "billing.add_credits", as_=dev, credits=100, account_id=tenant.account_id, operation_key="grant-1"
    )
    again = await tenant.run(
        "billing.add_credits", as_=dev, credits=100, account_id=tenant.account_id, operation_key="grant-1"
    )
    assert entry.id == again.id and (await tenant.run("billing.balance")).credits == 100


async def test_plan_limits_are_enforced_with_clear_errors(db, tenants):
    tenant = await tenants.create(plan="free")
    async with db.transaction(tenant.owner) as s:
        await billing.ensure_within_plan(s, "keywords", 500)
        with pytest.raises(PlanLimitExceeded, match="allows 500 keywords"):
            await billing.ensure_within_plan(s, "keywords", 501)
        count = await s.scalar(select(func.count()).select_from(select(Account).subquery()))
    assert count == 1


def test_credit_costs_table_is_complete():
    assert billing.credits_for("clustering", 41) == 3
    assert billing.credits_for("content_generation", 1234) == 13
    with pytest.raises(ValueError):
        billing.credits_for("teleportation", 1)


def test_readme_documents_the_credit_table():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for operation, cost in billing.CREDIT_COSTS.items():
        per = f"{cost.unit_size} {cost.unit}" if cost.unit_size > 1 else cost.unit
        row = f"| {operation.replace('_', ' ').replace('linking', 'internal linking')} | {cost.credits} per "
        assert row in readme and per.split()[-1] in readme.split(row, 1)[1].split("\n", 1)[0], operation
