"""Account bootstrap and authentication: the only code that turns a credential into a tenant.

These run on a system session because they happen before anyone is a tenant. Everything after
them gets a ``TenantContext`` and goes through tenant-scoped sessions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from pydantic import BaseModel, EmailStr, Field, TypeAdapter
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.callers import caller_by_key_hash, caller_by_user_id, granted_site_ids
from storage.db import Database
from storage.exceptions import NotAuthenticated, ValidationFailed
from storage.models import Account, ApiKey, Plan, Role, User
from storage.tenancy import TenantContext

API_KEY_PREFIX = "igny8_"
_hasher = PasswordHasher()
_email = TypeAdapter(EmailStr)


class AccountCreated(BaseModel):
    account_id: int
    account_slug: str
    user_id: int
    email: str
    role: Role
    plan: str
    credits: int
    api_key: str = Field(description="Shown once; only its hash is stored")


class IssuedKey(BaseModel):
    id: int
    prefix: str
    api_key: str


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:200] or "x"


async def unique_slug(session: AsyncSession, model: type[Account], base: str) -> str:
    taken = set((await session.scalars(select(model.slug).where(model.slug.startswith(base)))).all())
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


async def issue_api_key(session: AsyncSession, user: User, name: str = "default") -> IssuedKey:
    token = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        account_id=user.account_id,
        user_id=user.id,
        name=name,
        prefix=token[: len(API_KEY_PREFIX) + 6],
        key_hash=hash_api_key(token),
    )
    session.add(key)
    await session.flush()
    return IssuedKey(id=key.id, prefix=key.prefix, api_key=token)


async def create_account(
    db: Database,
    *,
    name: str,
    email: str,
    plan: str = "free",
    credits: int | None = None,
    password: str | None = None,
) -> AccountCreated:
    """Create an account with its owner and a first API key (the CLI's ``accounts create``)."""
    try:
        email = _email.validate_python(email)
    except ValueError:
        raise ValidationFailed.single("email", f"{email!r} is not a valid email address") from None
    if not name.strip():
        raise ValidationFailed.single("name", "is required")
    if credits is not None and credits < 0:
        raise ValidationFailed.single("credits", "cannot be negative")
    async with db.transaction(TenantContext.system()) as session:
        plan_row = await session.scalar(select(Plan).where(Plan.slug == plan))
        if plan_row is None:
            known = ", ".join((await session.scalars(select(Plan.slug).order_by(Plan.id))).all())
            raise ValidationFailed.single("plan", f"unknown plan {plan!r}; known: {known or 'none'}")
        if await session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
            raise ValidationFailed.single("email", f"{email} already has an account")
        account = Account(
            name=name.strip(),
            slug=await unique_slug(session, Account, slugify(name)),
            plan_id=plan_row.id,
            credits=plan_row.effective_credits_per_month() if credits is None else credits,
        )
        session.add(account)
        await session.flush()
        user = User(
            account_id=account.id,
            email=email,
            username=email,
            role=Role.OWNER,
            password_hash=hash_password(password) if password else None,
        )
        session.add(user)
        await session.flush()
        account.owner_id = user.id
        key = await issue_api_key(session, user)
        return AccountCreated(
            account_id=account.id,
            account_slug=account.slug,
            user_id=user.id,
            email=email,
            role=Role.OWNER,
            plan=plan_row.slug,
            credits=account.credits,
            api_key=key.api_key,
        )


# A key used every second would otherwise rewrite one row on every request; a minute is precise
# enough to tell which keys are in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


async def _tenant_of(db: Database, row: Row[Any]) -> TenantContext:
    """The seed's access rules: owners/admins reach every site, editors/viewers their grants."""
    if not row.is_active:
        raise NotAuthenticated("This user is deactivated.")
    if row.status in ("suspended", "cancelled"):
        raise NotAuthenticated("This account is not active.")
    role = Role(row.role)
    site_ids = await granted_site_ids(db, row.id) if role in (Role.EDITOR, Role.VIEWER) else None
    return TenantContext(
        account_id=row.account_id,
        user_id=row.id,
        role=role,
        site_ids=site_ids,
        is_system_account=row.is_system,
    )


async def authenticate_api_key(db: Database, key: str | None) -> TenantContext:
    """The key's ``last_used_at`` is written in a transaction of its own, at most once a minute, so
    authenticating stays a read."""
    if not key:
        raise NotAuthenticated("An API key is required (--api-key or IGNY8_API_KEY).")
    row = await caller_by_key_hash(db, hash_api_key(key.strip()))
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("This API key is not valid or has been revoked.")
    tenant = await _tenant_of(db, row)
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        async with db.transaction(TenantContext.system()) as session:
            await session.execute(update(ApiKey).where(ApiKey.id == row.key_id).values(last_used_at=now))
    return tenant


async def tenant_for_user_id(db: Database, user_id: int) -> TenantContext:
    row = await caller_by_user_id(db, user_id)
    if row is None:
        raise NotAuthenticated(f"user {user_id} not found")
    return await _tenant_of(db, row)
