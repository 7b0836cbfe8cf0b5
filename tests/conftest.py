"""Every test that takes ``db`` runs twice: on SQLite and on PostgreSQL (a fresh database per run).

PostgreSQL is expected at ``IGNY8_TEST_POSTGRES_URL`` (default 127.0.0.1:5432, user postgres).
Locally a missing server skips those runs; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.migrate import upgrade_async
from tests.factories import TenantFactory
from tests.stubs.fixtures import openai_stub_fixture, runware_stub_fixture  # noqa: F401
from tools import load_actions

load_actions()

POSTGRES_ADMIN_URL = os.environ.get(
    "IGNY8_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, dropped afterwards (skipped, or failed in CI, when
    the server is not there)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(_libpq(POSTGRES_ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    with scratch_postgres("igny8_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "igny8.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    url = request.getfixturevalue(f"{request.param}_url")
    await upgrade_async(url)
    database = Database(url)
    yield database
    await database.dispose()


@pytest.fixture
def tenants(db: Database) -> TenantFactory:
    return TenantFactory(db)
