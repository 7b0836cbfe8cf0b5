"""Bulk writes that need dialect-specific SQL, kept here so tools stay dialect-free."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Column, MetaData, Table, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ClauseElement

from storage.exceptions import PermissionDenied
from storage.models import Base, Sector, SiteOwned
from storage.tenancy import _references, check_site_placements, tenant_of

_PLACEMENT = ("site_id", "sector_id", "account_id")


async def insert_skipping_duplicates(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    unique: Sequence[str],
    common: Mapping[str, Any] | None = None,
) -> int:
    """INSERT rows, skipping any that collide on ``unique``; returns how many were inserted.

    ``common`` holds values every row shares (its site and sector, say), given once instead of per
    row; they win over a row's own. Rows should all have the same keys; a ``None`` value is stored
    as NULL (not replaced by the column default). ``ON CONFLICT DO NOTHING … RETURNING`` keeps the
    count exact even when another import races this one.

    Rows normally go through the ORM, so the tenant hook sets ``account_id`` and checks site and
    sector. On PostgreSQL, rows of a site-owned model that refers to nothing but its account, site
    and sector (keywords…) are instead streamed with ``COPY`` into a temporary table and moved with
    one ``INSERT … SELECT``, after the same checks made with the hook's own helpers (``_placed``).
    """
    if not rows:
        return 0
    common = dict(common or {})
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect == "postgresql" and _copyable(model) and _uniform_keys(rows) and _copied(rows, common):
        return await _copy_insert(session, model, rows, unique, common)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).on_conflict_do_nothing(index_elements=list(unique)).returning(model.id)
    params = [{**row, **common} for row in rows] if common else list(rows)
    # render_nulls keeps rows whose blanks differ in one multi-row statement; without it the ORM
    # groups rows by their non-None keys and runs one small INSERT per run of alike rows.
    result = await session.execute(stmt, params, execution_options={"render_nulls": True})
    return len(result.all())


def _copyable(model: type[Base]) -> bool:
    """Models whose bulk-INSERT tenancy is exactly ``_placed``; any other goes through the hook."""
    return issubclass(model, SiteOwned) and model is not Sector and not _references(model)


def _uniform_keys(rows: Sequence[Mapping[str, Any]]) -> bool:
    keys = rows[0].keys()
    return all(row.keys() == keys for row in rows)


def _copied(rows: Sequence[Mapping[str, Any]], common: Mapping[str, Any]) -> list[str]:
    """The columns that vary by row; the account is never taken from callers but from the site."""
    return [name for name in rows[0] if name not in common and name != "account_id"]


def _placed(session: Session, rows: Sequence[Mapping[str, Any]], common: Mapping[str, Any]) -> dict[int, int]:
    """The bulk-INSERT hook's checks for site-owned rows; returns site id -> the site's account.

    Sites and sectors are looked up through the tenant-scoped session, so one the tenant cannot
    see is NotFound; a row's sector must belong to its site and any ``account_id`` it gives must be
    its site's; viewers cannot write. Each distinct placement is checked once.
    """
    if tenant_of(session).read_only:
        raise PermissionDenied("Viewers have read-only access.")
    if any(name in rows[0] and name not in common for name in _PLACEMENT):
        placements = {tuple(common[n] if n in common else row.get(n) for n in _PLACEMENT) for row in rows}
    else:
        placements = {tuple(common.get(n) for n in _PLACEMENT)}
    return check_site_placements(session, placements)


def _python_default(column: Column[Any]) -> Any:
    """A column's Python-side default for rows that leave it out, evaluated once for the batch.

    Callables are called without an execution context (no model's default needs one).
    """
    default = column.default
    if default.is_callable:
        return default.arg(None)
    return default.arg  # a scalar, or a SQL expression evaluated by the INSERT


async def _copy_insert(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    unique: Sequence[str],
    common: dict[str, Any],
) -> int:
    """COPY rows into a temporary table, then INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING.

    Runs on the session's connection, inside its transaction: nothing is visible until it commits
    and a failure anywhere rolls the whole import back. Values shared by all rows (``common``, the
    account when there is one site, column defaults) are bound once into the SELECT.
    """
    await session.flush()
    site_accounts = await session.run_sync(_placed, rows, common)
    target: Table = model.__table__  # type: ignore[assignment]
    copied = _copied(rows, common)
    # Like the bulk-INSERT hook, the account always comes from the row's site.
    account_by_row = "site_id" in copied
    fixed: dict[str, Any] = {name: value for name, value in common.items() if name != "account_id"}
    if not account_by_row:
        fixed["account_id"] = site_accounts[common["site_id"]]
    for column in target.columns:
        default = column.default
        if (
            column.name not in copied
            and column.name not in fixed
            and default is not None
            and not default.is_sequence
        ):
            fixed[column.name] = _python_default(column)
    columns = [*copied, "account_id"] if account_by_row else copied
    # Dropped again below; a failure rolls its creation back with the (sub)transaction, and
    # ON COMMIT DROP is the backstop. A fixed name keeps the statements cacheable.
    scratch = Table(
        f"_bulk_{target.name}",
        MetaData(),
        *(Column(name, target.c[name].type) for name in columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    conn = await session.connection()
    await conn.run_sync(scratch.create)
    await _copy_rows(conn, scratch, copied, rows, site_accounts if account_by_row else None)
    moved = (
        postgresql.insert(target)
        .from_select(
            [*columns, *fixed],
            select(
                *scratch.c,
                *(
                    value if isinstance(value, ClauseElement) else literal(value, target.c[name].type)
                    for name, value in fixed.items()
                ),
            ),
        )
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(target.c.id)
        .cte("inserted")
    )
    inserted = await conn.scalar(select(func.count()).select_from(moved))
    await conn.run_sync(scratch.drop)
    return int(inserted or 0)


async def _copy_rows(
    conn: AsyncConnection,
    scratch: Table,
    copied: list[str],
    rows: Sequence[Mapping[str, Any]],
    site_accounts: Mapping[int, int] | None,
) -> None:
    """Stream ``copied`` of every row (and, given ``site_accounts``, its site's account) into ``scratch``."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(scratch.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in scratch.c)
    )
    values = itemgetter(*copied) if len(copied) > 1 else (lambda row: (row[copied[0]],))
    driver: psycopg.AsyncConnection[Any] = (await conn.get_raw_connection()).driver_connection  # type: ignore[assignment]
    try:
        async with driver.cursor() as cursor, cursor.copy(statement) as copy:
            if site_accounts is None:
                for row in rows:
                    await copy.write_row(values(row))
            else:
                for row in rows:
                    await copy.write_row((*values(row), site_accounts[row["site_id"]]))
    except psycopg.Error as exc:
        # Surface driver errors as SQLAlchemy's, like every other statement the app runs.
        raise DBAPIError.instance(
            statement.as_string(driver), None, exc, psycopg.Error, dialect=conn.dialect
        ) from exc
