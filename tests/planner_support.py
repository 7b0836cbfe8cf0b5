"""Helpers shared by the planner tests.

``Tenant.run(name, **args)`` cannot pass an argument called ``name`` (clusters, sectors and sites
have one), so those calls go through ``call``, which is ``invoke`` with the tenant's owner.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable
from typing import Any

import pytest

from storage.exceptions import ValidationFailed
from tests.factories import Tenant
from tools.registry import invoke

_numbers = itertools.count(1)


async def call(t: Tenant, action: str, /, **args: Any) -> Any:
    return await invoke(action, args, db=t.db, tenant=t.owner)


async def field_error(pending: Awaitable[Any], field: str) -> ValidationFailed:
    """Await ``pending`` and check it fails naming ``field``."""
    with pytest.raises(ValidationFailed) as info:
        await pending
    assert field in [e.field for e in info.value.errors], info.value.errors
    return info.value


async def new_sector(t: Tenant, site_id: int | None = None) -> int:
    out = await call(t, "sectors.create", site_id=site_id or t.site_id, name=f"sector {next(_numbers)}")
    return out.id


async def new_site(t: Tenant) -> int:
    return (await call(t, "sites.create", name=f"site {next(_numbers)}")).id


async def new_cluster(t: Tenant, name: str, sector_id: int | None = None, **args: Any) -> Any:
    return await call(
        t, "clusters.create", site_id=t.site_id, sector_id=sector_id or t.sector_id, name=name, **args
    )
