"""The aiohttp application: middlewares, then the REST, auth, ops, OpenAPI and chat routes.

Middlewares, outermost first, one concern each:

0. ``forwarded`` — behind a trusted proxy (``IGNY8_FORWARDED_ALLOW_IPS``), the request takes the
   client's scheme, host and address from ``X-Forwarded-Proto/Host/For``, so absolute URLs
   (pagination links) point where the client called and logs name the real client.
1. ``context`` — a request id (the caller's ``X-Request-ID`` if sane, else a new one, echoed back),
   one JSON access-log line and the Prometheus observation per request. It logs method, route,
   status, timing and who (account/user ids) — never headers, bodies or query strings, so no token,
   password or API key can reach a log.
2. ``errors`` — every failure becomes the envelope: ``Igny8Error`` with its ``http_status``
   (``ValidationFailed`` 400 naming fields, ``NotAuthenticated`` 401, ``InsufficientCredits`` and
   ``PlanLimitExceeded`` 402, ``PermissionDenied`` 403, ``NotFound`` 404, ``ConfirmationRequired`` 409
   with the request), aiohttp's own HTTP errors (404, 405, 413…) likewise, anything else 500 with an
   error id that is logged with the traceback.
3. ``body_limit`` — 413 before a byte of an oversized body is read (``Content-Length``); bodies sent
   without one hit aiohttp's ``client_max_size`` while being read, which ``errors`` maps the same.
4. ``auth`` — resolves the tenant (``bots.http.auth``).
5. ``throttle`` — a token bucket per account for write requests (per address before login): 429.
"""

from __future__ import annotations

import importlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from agent.runner import Conversations
from bots.http.auth import auth_middleware, setup_auth
from bots.http.keys import CONVERSATIONS, DB, TENANT
from bots.http.openapi import setup_openapi
from bots.http.ops import observe, setup_ops
from bots.http.rest import STREAMING, error_response, ok, setup_rest
from storage.db import Database
from storage.exceptions import Igny8Error
from storage.settings import Settings, get_settings
from tools import load_actions

__all__ = ["RateLimit", "configure_logging", "create_app", "error_response", "ok"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("igny8_request_id", str)
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Surfaces of the other HTTP modules; each exposes ``setup_routes(app)`` and needs the agent.
CHAT_MODULES = ("bots.http.chat", "bots.http.openai_facade")
# aiohttp's own errors, by status, in our vocabulary.
HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

log = structlog.get_logger("igny8.http")


# --- rate limiting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """``rate`` write requests per second sustained, bursts of up to ``burst``."""

    rate: float = 20.0
    burst: int = 200


@dataclass
class TokenBuckets:
    """One bucket per key, refilled lazily on each take; idle buckets are dropped now and then."""

    limit: RateLimit
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token; 0.0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, at = self.buckets.get(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - at) * self.limit.rate)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.limit.rate
        self.buckets[key] = (tokens - 1.0, now)
        if len(self.buckets) > 10_000:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        refill = self.limit.burst / self.limit.rate
        self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < refill}


LIMITER = web.AppKey("igny8_write_limiter", TokenBuckets)


# --- middlewares ------------------------------------------------------------------------------------


_SANE_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


def _first(value: str | None) -> str:
    """The client-side entry of a comma-separated forwarding header (the leftmost)."""
    return (value or "").split(",", 1)[0].strip()


def forwarded_middleware(allow_ips: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    trusted = {ip.strip() for ip in allow_ips.split(",") if ip.strip()}

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "*" not in trusted and request.remote not in trusted:
            return await handler(request)
        changes: dict[str, str] = {}
        if (scheme := _first(request.headers.get("X-Forwarded-Proto")).lower()) in ("http", "https"):
            changes["scheme"] = scheme
        if _SANE_HOST.match(host := _first(request.headers.get("X-Forwarded-Host"))):
            changes["host"] = host
        if client := _first(request.headers.get("X-Forwarded-For")):
            changes["remote"] = client
        return await handler(request.clone(**changes) if changes else request)

    return forwarded


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:  # redirects and the like, which aiohttp answers itself
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        observe(request, status, elapsed)
        tenant = request.get(TENANT)
        log.info(
            "request",
            request_id=request_id,
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            account_id=tenant.account_id if tenant else None,
            user_id=tenant.user_id if tenant else None,
            remote=request.remote,
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Igny8Error as exc:
        if request.get(STREAMING):
            raise  # headers are gone: the only honest signal left is a cut connection
        return igny8_error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error_response(exc)
    except Exception:
        if request.get(STREAMING):
            raise
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled_error", error_id=error_id, request_id=request.get(REQUEST_ID))
        return error_response(
            500,
            "internal_error",
            f"Something went wrong on our side (error id {error_id}); it has been logged.",
            details={"error_id": error_id},
        )


def igny8_error_response(request: web.Request, exc: Igny8Error) -> web.Response:
    payload = exc.to_dict()
    headers = {"WWW-Authenticate": 'Bearer realm="igny8"'} if exc.http_status == 401 else None
    if exc.http_status >= 500:  # e.g. TenancyViolation: a bug of ours, not the caller's
        error_id = uuid.uuid4().hex[:12]
        log.error("server_error", error_id=error_id, code=exc.code, request_id=request.get(REQUEST_ID))
        payload["details"] = {"error_id": error_id}
    return error_response(
        exc.http_status, payload["code"], payload["message"], payload.get("details"), headers
    )


def http_error_response(exc: web.HTTPException) -> web.Response:
    code = HTTP_CODES.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 413:
        message = "The request body is larger than this server accepts."
    elif exc.status == 405:
        message = f"{exc.reason}; allowed: {exc.headers.get('Allow', '')}"
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
    return error_response(exc.status, code, message, headers=headers or None)


def body_limit_middleware(max_bytes: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_bytes:
            return error_response(
                413,
                "payload_too_large",
                f"The request body is {request.content_length} bytes; the limit is {max_bytes}.",
                details={"limit": max_bytes},
            )
        return await handler(request)

    return body_limit


@web.middleware
async def throttle_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in WRITE_METHODS:
        tenant = request.get(TENANT)
        key = f"account:{tenant.account_id}" if tenant else f"addr:{request.remote}"
        wait = request.app[LIMITER].take(key)
        if wait > 0:
            retry = max(1, round(wait + 0.5))
            return error_response(
                429,
                "rate_limited",
                f"Too many write requests; retry in {retry} s.",
                details={"retry_after": retry},
                headers={"Retry-After": str(retry)},
            )
    return await handler(request)


# --- the app ------------------------------------------------------------------------------------------


def create_app(
    db: Database,
    conversations: Conversations | None = None,
    *,
    settings: Settings | None = None,
    write_limit: RateLimit | None = None,
) -> web.Application:
    """The whole HTTP surface on ``db``. Chat routes are mounted only with ``conversations`` (the agent),
    which ``igny8 serve`` builds at startup; nothing heavy happens here."""
    settings = settings or get_settings()
    load_actions()
    app = web.Application(
        client_max_size=settings.max_upload_bytes,
        middlewares=[
            forwarded_middleware(settings.forwarded_allow_ips),
            context_middleware,
            error_middleware,
            body_limit_middleware(settings.max_upload_bytes),
            auth_middleware,
            throttle_middleware,
        ],
    )
    app[DB] = db
    app[LIMITER] = TokenBuckets(write_limit or RateLimit())
    setup_ops(app)
    setup_auth(app, settings.secret_key.get_secret_value())
    setup_openapi(app)
    setup_rest(app)
    if conversations is not None:
        app[CONVERSATIONS] = conversations
        for name in CHAT_MODULES:
            importlib.import_module(name).setup_routes(app)
    return app


def configure_logging(*, json: bool = True) -> None:
    """Structured logs for the server process (JSON lines); called by ``igny8 serve``, never on import."""
    import logging

    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
