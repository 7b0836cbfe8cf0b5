"""Test tenants built through the same service and actions users go through."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from storage.db import Database
from storage.models import Role
from storage.tenancy import TenantContext
from tools.accounts import create_account, tenant_for_user_id
from tools.registry import invoke

_counter = itertools.count(1)


@dataclass
class Tenant:
    """An account with an owner, one site and one sector, ready to run actions."""

    db: Database
    account_id: int
    owner: TenantContext
    api_key: str
    site_id: int
    sector_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    async def run(
        self, action_name: str, /, *, as_: TenantContext | None = None, confirmed: bool = False, **args: Any
    ) -> Any:
        return await invoke(action_name, args, db=self.db, tenant=as_ or self.owner, confirmed=confirmed)

    async def user(self, role: Role, site_ids: tuple[int, ...] = ()) -> TenantContext:
        created = await self.run(
            "users.create",
            email=f"{role}-{uuid.uuid4().hex[:8]}@example.com",
            role=role,
            site_ids=list(site_ids),
        )
        return await tenant_for_user_id(self.db, created.id)

    async def sector(self, name: str | None = None, site_id: int | None = None) -> int:
        out = await self.run(
            "sectors.create", site_id=site_id or self.site_id, name=name or f"sector {next(_counter)}"
        )
        return out.id

    async def site(self, name: str | None = None) -> int:
        return (await self.run("sites.create", name=name or f"site {next(_counter)}")).id

    async def keywords(self, *words: str, sector_id: int | None = None, **fields: Any) -> list[int]:
        ids = []
        for word in words:
            out = await self.run(
                "keywords.create",
                site_id=self.site_id,
                sector_id=sector_id or self.sector_id,
                keyword=word,
                **fields,
            )
            ids.append(out.id)
        return ids


class TenantFactory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, plan: str = "scale", credits: int | None = None) -> Tenant:
        n = next(_counter)
        made = await create_account(
            self.db,
            name=f"Tenant {n}",
            plan=plan,
            credits=credits,
            email=f"owner{n}-{uuid.uuid4().hex[:8]}@example.com",
        )
        owner = await tenant_for_user_id(self.db, made.user_id)
        site = await invoke("sites.create", {"name": f"Site {n}"}, db=self.db, tenant=owner)
        sector = await invoke(
            "sectors.create", {"site_id": site.id, "name": "Main"}, db=self.db, tenant=owner
        )
        return Tenant(self.db, made.account_id, owner, made.api_key, site.id, sector.id)
