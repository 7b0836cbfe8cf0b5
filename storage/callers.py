"""Who a credential belongs to, read before there is a tenant to scope anything by.

Every request authenticates, so these lookups take the shortest path the store has: plain SQL
(SQLAlchemy Core) on a read-only connection, one joined query per credential, no ORM session. They
read only the identity tables; turning a row into a ``TenantContext`` is ``tools.accounts``'s job.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, select

from storage.db import Database
from storage.models import Account, ApiKey, SiteUserAccess, User

# The columns that decide who a caller is and what they may reach.
CALLER_COLUMNS = (User.id, User.role, User.is_active, User.account_id, Account.status, Account.is_system)


async def _first(db: Database, stmt: Select[Any]) -> Row[Any] | None:
    async with db.read_connection() as conn:
        return (await conn.execute(stmt)).first()


async def caller_by_user_id(db: Database, user_id: int) -> Row[Any] | None:
    return await _first(
        db, select(*CALLER_COLUMNS).join(Account, Account.id == User.account_id).where(User.id == user_id)
    )


async def caller_by_key_hash(db: Database, key_hash: str) -> Row[Any] | None:
    """The caller plus the key's id, ``revoked_at`` and ``last_used_at``."""
    return await _first(
        db,
        select(ApiKey.id.label("key_id"), ApiKey.revoked_at, ApiKey.last_used_at, *CALLER_COLUMNS)
        .join(User, User.id == ApiKey.user_id)
        .join(Account, Account.id == User.account_id)
        .where(ApiKey.key_hash == key_hash),
    )


async def granted_site_ids(db: Database, user_id: int) -> frozenset[int]:
    async with db.read_connection() as conn:
        rows = await conn.execute(select(SiteUserAccess.site_id).where(SiteUserAccess.user_id == user_id))
        return frozenset(rows.scalars().all())
