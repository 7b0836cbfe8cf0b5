"""Who is calling: JWT access/refresh tokens, per-user API keys, and the middleware that turns either
into the request's tenant (the seed's AccountContextMiddleware).

* ``POST /api/v1/auth/token/`` ``{email, password}`` → an access token (15 minutes) and a refresh
  token (7 days), HS256-signed with ``IGNY8_SECRET_KEY``. ``typ`` tells them apart, so a stolen
  refresh token cannot be replayed as an access token; ``sub`` is the user, ``acct`` the account.
* ``POST /api/v1/auth/token/refresh/`` ``{refresh}`` → a new pair.
* API keys: ``Authorization: Api-Key igny8_…``, ``X-API-Key: igny8_…`` or ``Authorization: Bearer
  igny8_…`` (what OpenAI-style clients send).

Every authenticated request re-reads the user and account (``tools.accounts``), so deactivating
either, or revoking a key, takes effect on the next request rather than when a token expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar, cast

import jwt
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from bots.http.keys import DB, TENANT
from bots.http.rest import ok
from storage.db import Database
from storage.exceptions import NotAuthenticated, ValidationFailed
from storage.models import User
from storage.tenancy import TenantContext
from tools.accounts import (
    API_KEY_PREFIX,
    authenticate_api_key,
    hash_password,
    tenant_for_user_id,
    verify_password,
)
from tools.registry import ActionInput, parse_input

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
ALGORITHM = "HS256"
ISSUER = "igny8"
TOKEN_PATH = "/api/v1/auth/token/"
REFRESH_PATH = "/api/v1/auth/token/refresh/"
SIGNING_KEY = web.AppKey("igny8_jwt_signing_key", bytes)
M = TypeVar("M", bound=ActionInput)

# Reachable without credentials. The page holds no data: every call it makes authenticates.
PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs", TOKEN_PATH, REFRESH_PATH}
)
PUBLIC_PREFIXES = ("/static/",)

BAD_LOGIN = "Email or password is not correct."
NO_CREDENTIALS = (
    "Authentication required: send 'Authorization: Bearer <access token>' (from POST /api/v1/auth/token/) "
    "or an API key as 'Authorization: Api-Key igny8_…' or 'X-API-Key: igny8_…'."
)


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


TTL = {TokenType.ACCESS: ACCESS_TTL, TokenType.REFRESH: REFRESH_TTL}


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    account_id: int


class TokenPair(BaseModel):
    access: str
    refresh: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_expires_in: int


class LoginIn(ActionInput):
    model_config = ConfigDict(str_strip_whitespace=False)  # a password's spaces are part of it

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(ActionInput):
    refresh: str = Field(min_length=1, max_length=4096)


# --- tokens ---------------------------------------------------------------------------------------


def signing_key(secret: str) -> bytes:
    """The JWT key, derived from ``IGNY8_SECRET_KEY`` rather than the secret itself: the same secret
    encrypts integration credentials, and a key used for one purpose only cannot be played off the
    other. HMAC-SHA256 also gives the full 32 bytes HS256 wants, however short the secret."""
    return hmac.new(secret.encode(), b"igny8/jwt/v1", hashlib.sha256).digest()


def issue_token(
    key: bytes,
    *,
    user_id: int,
    account_id: int,
    typ: TokenType,
    ttl: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "sub": str(user_id),
        "acct": account_id,
        "typ": typ.value,
        "iat": issued,
        "exp": issued + (ttl if ttl is not None else TTL[typ]),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def issue_pair(key: bytes, tenant: TenantContext) -> TokenPair:
    if tenant.user_id is None:
        raise NotAuthenticated("Only users can hold tokens.")
    who = {"user_id": tenant.user_id, "account_id": tenant.account_id}
    return TokenPair(
        access=issue_token(key, typ=TokenType.ACCESS, **who),
        refresh=issue_token(key, typ=TokenType.REFRESH, **who),
        expires_in=int(ACCESS_TTL.total_seconds()),
        refresh_expires_in=int(REFRESH_TTL.total_seconds()),
    )


def read_token(key: bytes, token: str, expected: TokenType) -> TokenClaims:
    """Verify signature, expiry and type; each failure says what to do next."""
    label = "access token" if expected is TokenType.ACCESS else "refresh token"
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        hint = (
            "refresh it at " + REFRESH_PATH
            if expected is TokenType.ACCESS
            else "log in again at " + TOKEN_PATH
        )
        raise NotAuthenticated(f"The {label} has expired; {hint}.") from None
    except jwt.InvalidTokenError:
        raise NotAuthenticated(
            f"The {label} is not valid (malformed, or not signed by this server)."
        ) from None
    if claims.get("typ") != expected.value:
        raise NotAuthenticated(
            f"This is a {claims.get('typ', 'untyped')} token; an {label} is needed here."
            if expected is TokenType.ACCESS
            else f"This is not a refresh token; send the refresh token to {REFRESH_PATH}."
        )
    try:
        return TokenClaims(user_id=int(claims["sub"]), account_id=int(claims["acct"]))
    except (KeyError, TypeError, ValueError):
        raise NotAuthenticated(f"The {label} is missing its user or account.") from None


async def tenant_of_claims(db: Database, claims: TokenClaims) -> TenantContext:
    tenant = await tenant_for_user_id(db, claims.user_id)
    if tenant.account_id != claims.account_id:
        raise NotAuthenticated("This token no longer matches its account; log in again.")
    return tenant


# --- passwords ------------------------------------------------------------------------------------


@cache
def _decoy_hash() -> str:
    """Verified against when the email is unknown, so both failures cost the same argon2 time."""
    return hash_password(uuid.uuid4().hex)


async def login(db: Database, email: str, password: str) -> TenantContext:
    """Unknown email, no password set and wrong password all fail alike (no account enumeration).

    The hash is read in one short transaction and verified outside it: argon2 takes tens of
    milliseconds, and on SQLite every transaction holds the write lock.
    """
    async with db.transaction(TenantContext.system()) as session:
        row = (
            await session.execute(
                select(User.id, User.password_hash).where(func.lower(User.email) == email.lower()).limit(1)
            )
        ).first()
    stored = row.password_hash if row is not None else None
    matches = await asyncio.to_thread(verify_password, stored or _decoy_hash(), password)
    if row is None or not stored or not matches:
        raise NotAuthenticated(BAD_LOGIN)
    return await tenant_for_user_id(db, row.id)


# --- requests -------------------------------------------------------------------------------------


def credential(request: web.Request) -> tuple[str, str] | None:
    """``("api_key", key)`` or ``("jwt", token)`` from the headers; None when there is neither."""
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, value = header.partition(" ")
        value, scheme = value.strip(), scheme.lower()
        if not value or scheme not in ("bearer", "api-key"):
            raise NotAuthenticated("Use 'Authorization: Bearer <token>' or 'Authorization: Api-Key <key>'.")
        if scheme == "api-key" or value.startswith(API_KEY_PREFIX):
            return "api_key", value
        return "jwt", value
    key = request.headers.get("X-API-Key", "").strip()
    return ("api_key", key) if key else None


async def authenticate(request: web.Request) -> TenantContext:
    found = credential(request)
    if found is None:
        raise NotAuthenticated(NO_CREDENTIALS)
    kind, value = found
    db = request.app[DB]
    if kind == "api_key":
        return await authenticate_api_key(db, value)
    return await tenant_of_claims(db, read_token(request.app[SIGNING_KEY], value, TokenType.ACCESS))


def is_public(request: web.Request) -> bool:
    """Public paths, and requests no route matches (they answer 404/405 whoever asks)."""
    path = request.path
    return (
        path in PUBLIC_PATHS
        or path.startswith(PUBLIC_PREFIXES)
        or request.match_info.http_exception is not None
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not is_public(request):
        request[TENANT] = await authenticate(request)
    return await handler(request)


# --- token endpoints ------------------------------------------------------------------------------


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed.single("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed.single("body", "must be a JSON object")
    return body


def parsed(model: type[M], args: dict[str, Any]) -> M:
    """``parse_input`` (errors naming each field), typed as the model asked for."""
    return cast(M, parse_input(model, args))


async def token_view(request: web.Request) -> web.Response:
    """Email and password in, an access/refresh pair out."""
    body = parsed(LoginIn, await json_object(request))
    tenant = await login(request.app[DB], body.email.strip(), body.password)
    return ok(issue_pair(request.app[SIGNING_KEY], tenant))


async def refresh_view(request: web.Request) -> web.Response:
    """A refresh token in, a fresh pair out (the user and account are checked again)."""
    body = parsed(RefreshIn, await json_object(request))
    key = request.app[SIGNING_KEY]
    claims = read_token(key, body.refresh, TokenType.REFRESH)
    return ok(issue_pair(key, await tenant_of_claims(request.app[DB], claims)))


def setup_auth(app: web.Application, secret: str) -> None:
    app[SIGNING_KEY] = signing_key(secret)
    app.router.add_post(TOKEN_PATH, token_view, name="auth-token")
    app.router.add_post(REFRESH_PATH, refresh_view, name="auth-token-refresh")
