"""What every wire-protocol stub shares: a real HTTP server on 127.0.0.1, a queue of scripted
replies, a record of every request received, and an optional enforced request-rate limit.

Tests drive the production clients against these servers over real sockets; nothing in the
client is patched. Timestamps are ``time.monotonic()`` taken when the request arrived, so tests
assert timing (backoff, Retry-After, rate limits) from what the server saw, not from sleeps.
"""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass
class Reply:
    """One scripted behaviour. Fields left at their defaults mean "answer normally".

    ``status``/``body``/``headers`` replace the normal answer when ``status != 200`` or ``body`` is
    set; ``delay_s`` waits first (latency, or a hang past the client's timeout); ``drop`` closes
    the connection without answering.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    raw_body: str | None = None
    # Chat-specific (ignored elsewhere)
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    model: str | None = None

    @property
    def is_override(self) -> bool:
        return self.status != 200 or self.body is not None or self.raw_body is not None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float
    status: int = 0
    response: Any = None  # the error body sent back (success bodies are not kept)

    @property
    def auth(self) -> str:
        return self.headers.get("Authorization", "")


class ScriptedServer:
    """Base for the stubs: lifecycle, queues, recording, RPM enforcement."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Reply]] = {}
        self.defaults: dict[str, Reply] = {}
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._rpm: tuple[int, float] | None = None
        self._accepted: deque[float] = deque()

    # -- scripting ---------------------------------------------------------------------------------

    def enqueue(self, route: str, *replies: Reply) -> None:
        self.queues.setdefault(route, deque()).extend(replies)

    def set_default(self, route: str, reply: Reply) -> None:
        """Answer used once the queue for ``route`` is empty (e.g. for load tests)."""
        self.defaults[route] = reply

    def next_reply(self, route: str) -> Reply | None:
        queue = self.queues.get(route)
        if queue:
            return queue.popleft()
        return self.defaults.get(route)

    def enforce_rpm(self, limit: int, window_s: float = 60.0) -> None:
        """Answer 429 (with Retry-After) to any request beyond ``limit`` accepted per ``window_s``."""
        self._rpm = (limit, window_s)
        self._accepted.clear()

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    # -- serving -----------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- helpers for handlers ----------------------------------------------------------------------

    async def record(self, request: web.Request) -> RecordedRequest:
        at = time.monotonic()
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        entry = RecordedRequest(request.method, request.path, dict(request.headers), body, at)
        self.requests.append(entry)
        return entry

    def rate_limited(self, at: float) -> float | None:
        """Seconds until a slot frees if this request exceeds the enforced RPM, else None (and count it)."""
        if self._rpm is None:
            return None
        limit, window = self._rpm
        while self._accepted and self._accepted[0] <= at - window:
            self._accepted.popleft()
        if len(self._accepted) >= limit:
            return self._accepted[len(self._accepted) - limit] + window - at
        self._accepted.append(at)
        return None

    @staticmethod
    def rate_limit_headers(wait_s: float) -> dict[str, str]:
        return {
            "Retry-After": str(max(1, math.ceil(wait_s))),
            "retry-after-ms": str(max(1, round(wait_s * 1000))),
        }

    @staticmethod
    async def apply_latency(request: web.Request, reply: Reply | None) -> bool:
        """Sleep as scripted; False if the reply says to drop the connection instead of answering."""
        if reply is None:
            return True
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.drop:
            if request.transport is not None:
                request.transport.abort()
            return False
        return True

    @staticmethod
    def override_response(reply: Reply) -> web.Response:
        if reply.raw_body is not None:
            return web.Response(status=reply.status, text=reply.raw_body, headers=reply.headers)
        return web.json_response(
            reply.body if reply.body is not None else {}, status=reply.status, headers=reply.headers
        )


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 8)) -> bytes:
    """A small real image in ``fmt`` (PNG/JPEG/WEBP), so clients can sniff the type from magic bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, format="JPEG" if fmt.upper() == "JPG" else fmt.upper())
    return buffer.getvalue()
