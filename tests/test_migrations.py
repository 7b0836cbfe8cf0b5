"""The migrations build exactly the schema the models declare, and step down and up again cleanly.

Each backend gets its own scratch database: stepping down would break the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url

from storage.db import normalise_url
from storage.migrate import alembic_config, downgrade, upgrade
from storage.models import Base
from tests.conftest import scratch_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    with scratch_postgres("igny8_mig") as url:
        yield url


@contextmanager
def _sync_engine(url: str) -> Iterator[Engine]:
    parsed = make_url(normalise_url(url))
    sync_driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    engine = create_engine(parsed.set(drivername=sync_driver))
    try:
        yield engine
    finally:
        engine.dispose()


def _differences(url: str) -> list[object]:
    """What autogenerate would still write: empty when the database matches the models."""
    with _sync_engine(url) as engine, engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def _tables(url: str) -> set[str]:
    with _sync_engine(url) as engine:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_head_matches_the_models(scratch_url: str) -> None:
    upgrade(scratch_url)
    assert _differences(scratch_url) == []


def test_every_step_goes_down_and_up_again(scratch_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(scratch_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    upgrade(scratch_url)
    for previous in reversed(["base", *revisions[:-1]]):
        downgrade(scratch_url, previous)
    assert _tables(scratch_url) == set()
    upgrade(scratch_url)
    assert _differences(scratch_url) == []


def test_a_missing_index_is_noticed(scratch_url: str) -> None:
    """Guards the comparison itself: the listing index has DESC columns, which autogenerate
    compares only on recent versions."""
    upgrade(scratch_url)
    downgrade(scratch_url, "0001")
    assert _differences(scratch_url) != []
