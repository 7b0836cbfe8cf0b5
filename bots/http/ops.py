"""Operations endpoints: liveness, readiness and Prometheus metrics (all public, none under /api/v1).

``/healthz`` answers while the process serves; ``/readyz`` only when the database (and Redis, when
``IGNY8_REDIS_URL`` is set) answers too, so a load balancer stops sending traffic a replica cannot
serve. ``/metrics`` counts requests and latency per route *template* (``/api/v1/planner/keywords/{id}/``,
never the id itself, so the label set stays small), plus what ``tools.telemetry`` counts where the
work happens: AI calls, credits charged, jobs run and running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from yarl import URL

from bots.http.keys import DB
from bots.http.rest import error_response, ok
from storage.db import ping
from storage.settings import get_settings

PROBE_TIMEOUT_S = 2.0

REQUESTS = Counter("igny8_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "igny8_http_request_duration_seconds",
    "Time to answer an HTTP request (streamed answers: until the handler returns)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def route_label(request: web.Request) -> str:
    """The matched route's template, or ``unmatched`` (scanners' random paths must not add series)."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


def observe(request: web.Request, status: int, seconds: float) -> None:
    route = route_label(request)
    REQUESTS.labels(request.method, route, str(status)).inc()
    LATENCY.labels(request.method, route).observe(seconds)


# --- handlers -------------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    checks["database"] = await _probe(ping(request.app[DB]))
    redis_url = get_settings().redis_url
    if redis_url:
        checks["redis"] = await _probe(redis_ping(redis_url))
    if all(v == "ok" for v in checks.values()):
        return ok({"status": "ready", "checks": checks})
    return error_response(503, "not_ready", "A dependency is not answering.", details=checks)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _probe(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT_S)
    except TimeoutError:
        return f"timed out after {PROBE_TIMEOUT_S:.0f}s"
    except Exception as exc:  # a probe reports any failure instead of raising it
        return f"error: {type(exc).__name__}"
    return "ok"


async def redis_ping(url: str) -> None:
    """``PING`` in Redis' wire protocol: no client library needed just to ask whether it is up."""
    parsed = URL(url)
    reader, writer = await asyncio.open_connection(parsed.host or "localhost", parsed.port or 6379)
    try:
        if parsed.password:
            user = parsed.user or "default"
            writer.write(_resp("AUTH", user, parsed.password))
            await _expect_ok(reader, b"+OK")
        writer.write(_resp("PING"))
        await _expect_ok(reader, b"+PONG")
    finally:
        writer.close()
        await writer.wait_closed()


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def _expect_ok(reader: asyncio.StreamReader, expected: bytes) -> None:
    line = (await reader.readline()).strip()
    if line != expected:
        raise ConnectionError(f"unexpected Redis reply {line[:40]!r}")


def setup_ops(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
