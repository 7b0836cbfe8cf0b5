"""Bulk writes that need dialect-specific SQL, kept here so tools stay dialect-free."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base


async def insert_skipping_duplicates(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> int:
    """INSERT rows, skipping any that collide on ``unique``; returns how many were inserted.

    Goes through the ORM so the tenant hook sets ``account_id`` and checks site and sector.
    ``ON CONFLICT DO NOTHING … RETURNING`` keeps the count exact even when another import
    races this one.
    """
    if not rows:
        return 0
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).on_conflict_do_nothing(index_elements=list(unique)).returning(model.id)
    result = await session.execute(stmt, list(rows))
    return len(result.all())
