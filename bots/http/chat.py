"""Chat over HTTP: a turn is a POST answered with Server-Sent Events, plus the web chat page.

* ``POST /api/v1/chat`` ``{conversation_id?, message, site_id?, sector_id?}`` — one turn; as a
  multipart form it may carry files too, which the conversation keeps for tools to use (a CSV to
  import), named in the message the agent sees.
* ``POST /api/v1/chat/{conversation_id}/resume`` ``{decision, arguments?}`` — answer a confirmation.
* ``GET /api/v1/chat/{conversation_id}`` — the transcript, in the usual JSON envelope.
* ``GET /`` and ``/static/…`` — the page (public: it holds no data; every call it makes authenticates).

The stream is ``event: <kind>`` / ``data: <json>`` frames: ``start`` (the conversation id, first, so a
client can resume even if it misses the end), then the agent's own events (token, message, tool_call,
tool_result, confirm, job, progress, queued, error) as the runner yields them, keep-alive comments
during long jobs, and ``done`` last. Conversations live on the thread ``http:<id>``; the runner puts the
caller's account in front, so another tenant's id names an empty thread of one's own, never theirs.
Files on the server are never reachable from here (``local_files`` stays off).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from aiohttp import web
from pydantic import Field, PositiveInt, StringConstraints, model_validator

from agent.runner import AgentEvent
from bots.http import sse
from bots.http.auth import json_object, parsed
from bots.http.keys import CONVERSATIONS, tenant_of
from bots.http.rest import ok
from storage.exceptions import ValidationFailed
from tools.registry import ActionInput

STATIC_DIR = Path(__file__).parent / "static"
SURFACE = "http"
MAX_MESSAGE_CHARS = 20_000
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
# The page loads nothing from elsewhere; say so, so injected markup could not either.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

ConversationId = Annotated[str, StringConstraints(pattern=CONVERSATION_ID_PATTERN)]
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)


class ChatIn(ActionInput):
    conversation_id: ConversationId | None = Field(None, description="Omit to start a new conversation")
    message: Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    site_id: PositiveInt | None = None
    sector_id: PositiveInt | None = None


class ResumeIn(ActionInput):
    decision: Literal["approve", "edit", "reject"]
    arguments: dict[str, Any] | None = Field(None, description="For 'edit': the arguments to change")
    site_id: PositiveInt | None = None
    sector_id: PositiveInt | None = None

    @model_validator(mode="after")
    def _edit_needs_arguments(self) -> ResumeIn:
        if self.decision == "edit" and not self.arguments:
            raise ValueError("arguments are required when the decision is 'edit'")
        return self


def setup_routes(app: web.Application) -> None:
    sse.install(app)
    app.router.add_post("/api/v1/chat", send_message)
    app.router.add_get("/api/v1/chat/{conversation_id}", history)
    app.router.add_post("/api/v1/chat/{conversation_id}/resume", resume)
    app.router.add_get("/", page)
    app.router.add_static("/static/", STATIC_DIR, name="static")


def thread(conversation_id: str) -> str:
    return f"{SURFACE}:{conversation_id}"


# --- handlers ----------------------------------------------------------------------------------------
# Input errors are raised as ``ValidationFailed``; the app's error middleware answers them with the
# 400 envelope. Once a stream has started, nothing is raised any more (see ``stream_turn``).


async def send_message(request: web.Request) -> web.StreamResponse:
    """JSON, or a multipart form with the same fields plus attached files (a CSV to import…)."""
    tenant = tenant_of(request)
    if request.content_type == "multipart/form-data":
        fields, files = await form_with_files(request)
    else:
        fields, files = await json_object(request), {}
    body = parsed(ChatIn, fields)
    conversation_id = body.conversation_id or str(uuid.uuid4())
    events = request.app[CONVERSATIONS].send(
        tenant,
        thread(conversation_id),
        body.message,
        site_id=body.site_id,
        sector_id=body.sector_id,
        local_files=False,
        attachments=files,
    )
    return await stream_turn(request, conversation_id, events)


async def resume(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    conversation_id = path_conversation_id(request)
    body = parsed(ResumeIn, await json_object(request))
    events = request.app[CONVERSATIONS].resume(
        tenant,
        thread(conversation_id),
        {"decision": body.decision, "arguments": body.arguments or {}},
        site_id=body.site_id,
        sector_id=body.sector_id,
        local_files=False,
    )
    return await stream_turn(request, conversation_id, events)


async def history(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    conversation_id = path_conversation_id(request)
    messages = await request.app[CONVERSATIONS].history(tenant, thread(conversation_id))
    return ok({"conversation_id": conversation_id, "messages": messages})


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


# --- helpers -----------------------------------------------------------------------------------------


async def stream_turn(
    request: web.Request, conversation_id: str, events: AsyncIterator[AgentEvent]
) -> web.StreamResponse:
    """Relay one turn as SSE. If the client goes away the turn still finishes (see ``sse``)."""
    turn = sse.detached(request.app, events)
    response = await sse.open_stream(request, {"X-Conversation-Id": conversation_id})
    try:
        await response.write(sse.frame({"conversation_id": conversation_id}, "start"))
        async for event in turn:
            await response.write(sse.KEEP_ALIVE if event is None else sse.frame(event.data, event.kind))
        await response.write(sse.frame({"conversation_id": conversation_id}, "done"))
        await response.write_eof()
    except ConnectionResetError:  # the client left; the turn carries on in its own task
        pass
    return response


async def form_with_files(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Text fields (empty ones left out, as an unset optional) and uploaded files by file name."""
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for name, value in (await request.post()).items():
        if isinstance(value, web.FileField):  # form encoders percent-encode some characters of names
            files[unquote(value.filename or name)] = value.file.read()
        elif value != "":
            fields[name] = value
    return fields, files


def path_conversation_id(request: web.Request) -> str:
    value = request.match_info["conversation_id"]
    if not _CONVERSATION_ID.fullmatch(value):
        raise ValidationFailed.single(
            "conversation_id",
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value
