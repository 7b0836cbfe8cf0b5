"""Typed keys shared by the HTTP app's modules (aiohttp ``AppKey``/request keys)."""

from __future__ import annotations

from aiohttp import web

from agent.runner import Conversations
from storage.db import Database
from storage.tenancy import TenantContext

DB = web.AppKey("db", Database)
CONVERSATIONS = web.AppKey("conversations", Conversations)
# Set on every authenticated request by the auth middleware; handlers never build a tenant themselves.
TENANT = web.RequestKey("caller_tenant", TenantContext)


def tenant_of(request: web.Request) -> TenantContext:
    tenant = request.get(TENANT)
    if tenant is None:
        raise web.HTTPUnauthorized(reason="authentication required")
    return tenant
