"""Engines and tenant-bound sessions for SQLite (aiosqlite) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.settings import get_settings
from storage.tenancy import READ_ONLY_KEY, TENANT_KEY, TenantContext, TenantSession

# What "our" PostgreSQL pool is (the HTTP benchmark gives its bare baseline the same one).
POSTGRES_POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_pre_ping": True}


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://``/``sqlite://`` URLs and pick the async drivers we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN (see _sqlite_begin) so SAVEPOINTs work too.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    """Take the write lock up front: a transaction that reads and then writes would otherwise fail
    with SQLITE_BUSY when another writer commits in between, whatever the busy timeout. Read-only
    sessions (which cannot write) begin deferred, so they read alongside a writer (WAL)."""
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY_KEY) else "BEGIN IMMEDIATE")


def create_engine(url: str) -> AsyncEngine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, **POSTGRES_POOL)


class Database:
    """One engine per process; hands out sessions bound to a tenant for their whole life."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = create_engine(self.url)
        self._reader = self.engine.execution_options(**{READ_ONLY_KEY: True})  # seen by _sqlite_begin
        self._sessions = async_sessionmaker(
            self.engine, sync_session_class=TenantSession, expire_on_commit=False
        )

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def session(self, ctx: TenantContext, *, read_only: bool = False) -> AsyncSession:
        """A session bound to ``ctx`` for its whole life; ``read_only`` refuses every write, which
        lets SQLite run it beside a writer instead of queueing for the write lock."""
        if read_only:
            return self._sessions(info={TENANT_KEY: ctx, READ_ONLY_KEY: True}, bind=self._reader)
        return self._sessions(info={TENANT_KEY: ctx})

    @asynccontextmanager
    async def transaction(
        self, ctx: TenantContext, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on any error."""
        async with self.session(ctx, read_only=read_only) as session, session.begin():
            yield session

    def read_connection(self) -> AsyncConnection:
        """A plain connection that only reads (storage's own lookups; never scoped by a tenant)."""
        return self._reader.connect()

    async def dispose(self) -> None:
        await self.engine.dispose()


async def ping(db: Database) -> None:
    """Raise unless the database answers a trivial query (the HTTP readiness probe); no tenant is
    involved, so it needs no tenant session."""
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@asynccontextmanager
async def sqlite_side_connection(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """A plain aiosqlite connection for a side file (conversation checkpoints), tuned like ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        yield conn


_default: Database | None = None


def get_database() -> Database:
    global _default
    if _default is None:
        _default = Database(get_settings().database_url)
    return _default
