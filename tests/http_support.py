"""What the HTTP tests share: a test client on the real app, credentials, and turning an action's
arguments into the HTTP request a client would send for them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bots.http.app import create_app
from bots.http.auth import SIGNING_KEY, TokenType, issue_token
from bots.http.rest import ActionRoute
from storage.db import Database
from storage.models import Role, User
from storage.tenancy import TenantContext


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def data(self) -> Any:
        assert self.body["success"] is True, self.body
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        assert self.body["success"] is False, self.body
        return self.body["error"]

    def fields(self) -> set[str]:
        return {d["field"] for d in self.error.get("details") or []}


async def send(client: TestClient, method: str, path: str, **kwargs: Any) -> Reply:
    async with client.request(method, path, **kwargs) as response:
        text = await response.text()
        is_json = response.content_type == "application/json"
        body = json.loads(text) if is_json and text else text
        return Reply(response.status, body, response.headers)


def api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def access_token(app: web.Application, tenant: TenantContext, **kwargs: Any) -> str:
    assert tenant.user_id is not None
    return issue_token(
        app[SIGNING_KEY], user_id=tenant.user_id, account_id=tenant.account_id, typ=TokenType.ACCESS, **kwargs
    )


async def developer(db: Database, account_id: int) -> TenantContext:
    """A platform developer in ``account_id`` (no action creates one; only the system can)."""
    async with db.transaction(TenantContext.system()) as s:
        name = f"dev-{uuid.uuid4().hex[:8]}"
        user = User(account_id=account_id, email=f"{name}@example.com", username=name, role=Role.DEVELOPER)
        s.add(user)
        await s.flush()
        return TenantContext(account_id=account_id, user_id=user.id, role=Role.DEVELOPER)


def request_for(route: ActionRoute, args: dict[str, Any], method: str | None = None) -> tuple[str, str, dict]:
    """(method, path, client kwargs) carrying ``args`` the way the route reads them."""
    args = dict(args)
    path = route.path
    for name in route.path_params:
        path = path.replace("{" + name + "}", str(args.pop(name)))
    method = method or route.methods[0]
    if method in ("GET", "DELETE"):
        params = [(k, str(x)) for k, v in args.items() for x in (v if isinstance(v, list) else [v])]
        return method, path, {"params": params}
    if any(isinstance(v, bytes) for v in args.values()):
        form = aiohttp.FormData()
        for k, v in args.items():
            if isinstance(v, bytes):
                form.add_field(k, v, filename=f"{k}.csv", content_type="text/csv")
            else:
                form.add_field(k, str(v))
        return method, path, {"data": form}
    return method, path, {"json": args}


@asynccontextmanager
async def client_for(db: Database, **app_options: Any) -> AsyncIterator[TestClient]:
    """A client of the whole app (chat aside) on ``db``, served on a local port."""
    async with TestClient(TestServer(create_app(db, **app_options))) as client:
        yield client
