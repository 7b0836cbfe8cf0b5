"""Server-Sent Events plumbing shared by the chat API and the OpenAI façade.

An agent turn runs in its own task and feeds a queue; the HTTP handler only reads that queue. So a
client that closes the tab does not abort a half-done bulk action — the turn finishes and is
checkpointed, and the next message sees its result — and a handler can send keep-alive comments while
a long job runs without a step of the agent ever being cancelled by a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from aiohttp import web

from agent.runner import AgentEvent
from bots.http.rest import STREAMING
from storage.exceptions import Igny8Error

log = logging.getLogger(__name__)

# Proxies commonly drop a connection idle for 60 s; a comment line every 15 s keeps it open.
HEARTBEAT_S = 15.0
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
KEEP_ALIVE = b": keep-alive\n\n"
RUNS = web.AppKey("igny8_agent_runs", set[asyncio.Task[None]])
_END = object()
_UNTRACKED: set[asyncio.Task[None]] = set()  # runs of an app that never called install()


def install(app: web.Application) -> None:
    """Track detached turns on the app, and stop them when it shuts down (their checkpoints stay, so
    the runner resumes them on the conversation's next message). Idempotent: both surfaces call it."""
    if RUNS in app:
        return
    app[RUNS] = set()

    async def stop_runs(app: web.Application) -> None:
        runs = list(app[RUNS])
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    app.on_shutdown.append(stop_runs)


def frame(data: Any, event: str | None = None) -> bytes:
    """One SSE message. ``json.dumps`` never emits a raw newline, so one ``data:`` line is enough."""
    payload = data if isinstance(data, str) else json.dumps(data, default=str, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


async def open_stream(request: web.Request, headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Send the headers. From here on the error middleware must not answer with an envelope: the
    status line is gone, so a failure can only cut the stream (``STREAMING`` tells it so)."""
    response = web.StreamResponse(headers={**SSE_HEADERS, **(headers or {})})
    request[STREAMING] = True
    await response.prepare(request)
    return response


def detached(
    app: web.Application, events: AsyncIterator[AgentEvent], *, heartbeat: float = HEARTBEAT_S
) -> AsyncIterator[AgentEvent | None]:
    """The turn's events, or ``None`` whenever ``heartbeat`` seconds pass without one (time for a
    keep-alive). The turn itself runs in a task owned by the app, not by the reader."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async with aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except Igny8Error as exc:
            queue.put_nowait(AgentEvent("error", {"message": exc.message, "code": exc.code}))
        except Exception:
            log.exception("agent turn failed")
            queue.put_nowait(
                AgentEvent(
                    "error",
                    {"message": "Something went wrong on our side. The conversation is saved; try again."},
                )
            )
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    runs = app.get(RUNS, _UNTRACKED)  # a strong reference: the event loop keeps only weak ones
    runs.add(task)
    task.add_done_callback(runs.discard)

    async def read() -> AsyncIterator[AgentEvent | None]:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield None
                continue
            if item is _END:
                return
            yield item

    return read()
