"""Conversation memory: a real LangGraph checkpointer on the same backend as the store.

SQLite keeps checkpoints in a file beside the database (its own connection, so checkpoint writes never
wait on the store's write lock); PostgreSQL uses a pool whose connections are checked before use, so a
restarted server or a dropped idle connection does not break the next turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from storage.db import normalise_url, sqlite_side_connection


def checkpoint_path(database_url: str) -> Path:
    database = make_url(normalise_url(database_url)).database or ":memory:"
    if database == ":memory:":
        raise ValueError("conversation memory needs a file-backed SQLite database")
    path = Path(database)
    return path.with_name(f"{path.stem}-checkpoints.db")


@asynccontextmanager
async def open_checkpointer(database_url: str) -> AsyncIterator[BaseCheckpointSaver]:
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":
        async with sqlite_side_connection(checkpoint_path(database_url)) as conn:
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            yield saver
        return
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    async with AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=20,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield saver
