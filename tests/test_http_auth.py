"""Authentication over HTTP: password login, JWT access/refresh, API keys in three headers, and every
way a credential can be wrong (expired, forged, wrong type, revoked, deactivated)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bots.http.auth import (
    ALGORITHM,
    REFRESH_PATH,
    SIGNING_KEY,
    TOKEN_PATH,
    TokenType,
    issue_token,
    signing_key,
)
from storage.db import Database
from storage.models import Account, ApiKey, User
from storage.tenancy import TenantContext
from tests.http_support import (
    access_token,
    api_key,
    bearer,
    client_for,
    send,
)
from tools.accounts import LAST_USED_RESOLUTION, create_account, tenant_for_user_id


@pytest.fixture
async def http(db: Database) -> AsyncIterator[TestClient]:
    async with client_for(db) as client:
        yield client


ME = "/api/v1/auth/accounts/me/"
PASSWORD = "correct horse battery staple "  # the trailing space is part of it


@pytest.fixture
async def user(db: Database) -> tuple[str, TenantContext, str]:
    """(email, tenant, api key) of an owner who has a password."""
    email = f"login-{uuid.uuid4().hex[:8]}@example.com"
    made = await create_account(db, name="Login Co", email=email, password=PASSWORD)
    return email, await tenant_for_user_id(db, made.user_id), made.api_key


async def login(http: TestClient, email: str, password: str = PASSWORD) -> dict:
    reply = await send(http, "POST", TOKEN_PATH, json={"email": email, "password": password})
    assert reply.status == 200, reply.body
    return reply.data


async def test_login_gives_tokens_that_work(http: TestClient, user) -> None:
    email, tenant, _ = user
    tokens = await login(http, email.upper())  # emails compare case-insensitively
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 15 * 60
    assert tokens["refresh_expires_in"] == 7 * 24 * 3600
    me = await send(http, "GET", ME, headers=bearer(tokens["access"]))
    assert (
        me.status == 200
        and me.data["account_id"] == tenant.account_id
        and me.data["user_id"] == tenant.user_id
    )
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})
    assert (
        claims["typ"] == "access"
        and claims["sub"] == str(tenant.user_id)
        and claims["acct"] == tenant.account_id
    )
    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_wrong_password_unknown_email_and_no_password_fail_alike(
    db: Database, http: TestClient, user
) -> None:
    email, _, _ = user
    no_password = f"nopw-{uuid.uuid4().hex[:8]}@example.com"
    await create_account(db, name="No Password", email=no_password)
    answers = [
        await send(http, "POST", TOKEN_PATH, json={"email": e, "password": p})
        for e, p in [
            (email, "wrong"),
            (email, PASSWORD.strip()),
            ("nobody@example.com", PASSWORD),
            (no_password, PASSWORD),
        ]
    ]
    assert {a.status for a in answers} == {401}
    assert len({str(a.body) for a in answers}) == 1, "the answers must not tell the cases apart"


async def test_login_input_is_validated(http: TestClient) -> None:
    missing = await send(http, "POST", TOKEN_PATH, json={"email": "a@example.com"})
    assert missing.status == 400 and missing.fields() == {"password"}
    garbage = await send(
        http, "POST", TOKEN_PATH, data=b"not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status == 400 and garbage.fields() == {"body"}


async def test_refresh_gives_a_new_pair(http: TestClient, user) -> None:
    email, tenant, _ = user
    tokens = await login(http, email)
    fresh = await send(http, "POST", REFRESH_PATH, json={"refresh": tokens["refresh"]})
    assert fresh.status == 200 and fresh.data["access"] != tokens["access"]
    assert (await send(http, "GET", ME, headers=bearer(fresh.data["access"]))).data[
        "user_id"
    ] == tenant.user_id


async def test_a_refresh_token_is_not_an_access_token_and_back(http: TestClient, user) -> None:
    email, _, _ = user
    tokens = await login(http, email)
    as_access = await send(http, "GET", ME, headers=bearer(tokens["refresh"]))
    assert as_access.status == 401 and "refresh token" in as_access.error["message"]
    as_refresh = await send(http, "POST", REFRESH_PATH, json={"refresh": tokens["access"]})
    assert as_refresh.status == 401 and "not a refresh token" in as_refresh.error["message"]


async def test_expired_tokens_401_with_what_to_do(http: TestClient, user) -> None:
    _, tenant, _ = user
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expired = access_token(http.app, tenant, now=an_hour_ago)
    reply = await send(http, "GET", ME, headers=bearer(expired))
    assert (
        reply.status == 401 and "expired" in reply.error["message"] and REFRESH_PATH in reply.error["message"]
    )
    old_refresh = issue_token(
        http.app[SIGNING_KEY],
        user_id=tenant.user_id,
        account_id=tenant.account_id,
        typ=TokenType.REFRESH,
        now=datetime.now(UTC) - timedelta(days=8),
    )
    reply = await send(http, "POST", REFRESH_PATH, json={"refresh": old_refresh})
    assert (
        reply.status == 401 and "expired" in reply.error["message"] and TOKEN_PATH in reply.error["message"]
    )


async def test_forged_and_malformed_tokens_401(http: TestClient, user) -> None:
    _, tenant, _ = user
    claims = {"iss": "igny8", "sub": str(tenant.user_id), "acct": tenant.account_id, "typ": "access"}
    now = datetime.now(UTC)
    timing = {"iat": now, "exp": now + timedelta(minutes=5)}
    forged = [
        jwt.encode({**claims, **timing}, signing_key("someone else's secret"), algorithm=ALGORITHM),
        jwt.encode({**claims, **timing}, "", algorithm="none"),
        "not.a.jwt",
        access_token(http.app, tenant)[:-4] + "AAAA",  # signature tampered
    ]
    for token in forged:
        reply = await send(http, "GET", ME, headers=bearer(token))
        assert reply.status == 401 and "not valid" in reply.error["message"], (token, reply.body)
    other_account = jwt.encode(
        {**claims, **timing, "acct": tenant.account_id + 1000}, http.app[SIGNING_KEY], algorithm=ALGORITHM
    )
    reply = await send(http, "GET", ME, headers=bearer(other_account))
    assert reply.status == 401 and "no longer matches" in reply.error["message"]


async def test_deactivated_users_and_accounts_are_refused_at_once(
    db: Database, http: TestClient, user
) -> None:
    email, tenant, key = user
    tokens = await login(http, email)
    async with db.transaction(TenantContext.system()) as s:
        await s.execute(update(User).where(User.id == tenant.user_id).values(is_active=False))
    for headers in (bearer(tokens["access"]), api_key(key)):
        reply = await send(http, "GET", ME, headers=headers)
        assert reply.status == 401 and "deactivated" in reply.error["message"]
    refreshed = await send(http, "POST", REFRESH_PATH, json={"refresh": tokens["refresh"]})
    assert refreshed.status == 401
    async with db.transaction(TenantContext.system()) as s:
        await s.execute(update(User).where(User.id == tenant.user_id).values(is_active=True))
        await s.execute(update(Account).where(Account.id == tenant.account_id).values(status="suspended"))
    reply = await send(http, "GET", ME, headers=bearer(tokens["access"]))
    assert reply.status == 401 and "not active" in reply.error["message"]


async def test_api_keys_in_each_header_form(http: TestClient, user) -> None:
    _, tenant, key = user
    for headers in (
        {"X-API-Key": key},
        {"Authorization": f"Api-Key {key}"},
        {"Authorization": f"api-key {key}"},
        {"Authorization": f"Bearer {key}"},
    ):
        reply = await send(http, "GET", ME, headers=headers)
        assert reply.status == 200 and reply.data["account_id"] == tenant.account_id, headers


async def test_revoked_and_unknown_keys_401(db: Database, http: TestClient, user) -> None:
    _, tenant, key = user
    assert (await send(http, "GET", ME, headers=api_key(key))).status == 200
    async with db.transaction(TenantContext.system()) as s:
        await s.execute(
            update(ApiKey).where(ApiKey.user_id == tenant.user_id).values(revoked_at=datetime.now(UTC))
        )
    for headers in (api_key(key), bearer(key), api_key("igny8_made_up"), {"Authorization": "Api-Key nope"}):
        reply = await send(http, "GET", ME, headers=headers)
        assert reply.status == 401 and "revoked" in reply.error["message"], headers


async def test_a_keys_use_is_stamped_at_most_once_a_minute(db: Database, http: TestClient, user) -> None:
    _, tenant, key = user

    async def last_used() -> datetime | None:
        async with db.transaction(TenantContext.system()) as s:
            return await s.scalar(select(ApiKey.last_used_at).where(ApiKey.user_id == tenant.user_id))

    async def set_last_used(value: datetime) -> None:
        async with db.transaction(TenantContext.system()) as s:
            await s.execute(update(ApiKey).where(ApiKey.user_id == tenant.user_id).values(last_used_at=value))

    assert (await send(http, "GET", ME, headers=api_key(key))).status == 200
    first = await last_used()
    assert first is not None and datetime.now(UTC) - first < timedelta(minutes=1)
    assert (await send(http, "GET", ME, headers=api_key(key))).status == 200
    assert await last_used() == first, "a second use within the minute writes nothing"
    stale = first - LAST_USED_RESOLUTION
    await set_last_used(stale)
    assert (await send(http, "GET", ME, headers=api_key(key))).status == 200
    assert await last_used() > first


async def test_unsupported_authorization_schemes_401(http: TestClient) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Token abc"):
        reply = await send(http, "GET", ME, headers={"Authorization": value})
        assert reply.status == 401 and reply.error["code"] == "not_authenticated", value


async def test_public_paths_need_no_credentials(http: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"):
        assert (await send(http, "GET", path)).status == 200, path
    assert (await send(http, "GET", "/api/v1/no/such/route/")).status == 404
