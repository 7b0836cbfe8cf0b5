"""An OpenAI-compatible façade, so any chat client that speaks the OpenAI API can talk to the agent.

* ``POST /v1/chat/completions`` — ``stream: true`` answers ``data: {chat.completion.chunk}`` frames
  ending ``data: [DONE]``; otherwise one ``chat.completion`` object.
* ``GET /v1/models`` — the one model there is.

The client authenticates with its IGNY8 API key as ``Authorization: Bearer <key>`` (the app's auth
middleware). OpenAI clients resend the whole transcript on every call, but the agent keeps its own
memory, so only the last user message is passed on. The conversation is named by the ``X-Conversation-Id``
header, else the request's ``user`` field, else it is the key's ``default`` conversation (thread
``openai:<id>``). Tool activity stays server-side; a confirmation becomes assistant text ending
"reply yes or no", and the next "yes"/"no" message answers it (the runner understands both).
``site_id``/``sector_id`` may come as extra body fields or ``X-Site-Id``/``X-Sector-Id`` headers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from agent.runner import AgentEvent
from bots.http import sse
from bots.http.chat import CONVERSATION_ID_PATTERN
from bots.http.keys import CONVERSATIONS, tenant_of

MODEL_ID = "igny8-agent"
SURFACE = "openai"
DEFAULT_CONVERSATION = "default"
CREATED = int(time.time())  # the "model" exists since the process started
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)


class BadRequest(Exception):
    """A request OpenAI itself would refuse; answered in OpenAI's error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def setup_routes(app: web.Application) -> None:
    sse.install(app)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)


# --- handlers ----------------------------------------------------------------------------------------


async def list_models(request: web.Request) -> web.Response:
    tenant_of(request)
    model = {"id": MODEL_ID, "object": "model", "created": CREATED, "owned_by": "igny8"}
    return web.json_response({"object": "list", "data": [model]})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    try:
        body = await _json_object(request)
        message = last_user_message(body.get("messages"))
        conversation = conversation_of(request, body)
        site_id = _optional_id(body.get("site_id", request.headers.get("X-Site-Id")), "site_id")
        sector_id = _optional_id(body.get("sector_id", request.headers.get("X-Sector-Id")), "sector_id")
    except BadRequest as exc:
        return openai_error(exc.message, exc.param)
    events = request.app[CONVERSATIONS].send(
        tenant,
        f"{SURFACE}:{conversation}",
        message,
        site_id=site_id,
        sector_id=sector_id,
        local_files=False,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    headers = {"X-Conversation-Id": conversation}
    if body.get("stream"):
        return await _stream(request, completion_id, events, headers)
    text = "".join([piece async for piece in assistant_text(sse.detached(request.app, events))])
    return web.json_response(completion(completion_id, text), headers=headers)


# --- turning agent events into assistant text -------------------------------------------------------


async def assistant_text(events: AsyncIterator[AgentEvent | None]) -> AsyncIterator[str]:
    """The turn as pieces of one assistant reply. Streamed tokens go out as they come; a finished
    message goes out only if its tokens did not (the offline model and some servers don't stream).
    ``None`` (a heartbeat) passes through as an empty piece so the caller can keep the line alive."""
    streamed = False  # tokens were sent for the message being built
    started = False  # something was sent: later blocks need a blank line before them

    async for event in events:
        if event is None:
            yield ""
            continue
        piece: str | None = None
        if event.kind == "token":
            piece = event.data.get("text", "")
            if not streamed and started and piece:
                piece = "\n\n" + piece
            streamed = streamed or bool(piece)
        elif event.kind == "message":
            piece = None if streamed else _block(event.data.get("text", ""), started)
            streamed = False
        elif event.kind == "confirm":
            piece = _block(confirmation_text(event.data), started)
        elif event.kind in ("queued", "error"):
            piece = _block(event.data.get("message", ""), started)
        elif event.kind == "job" and event.data.get("status") == "failed":
            piece = _block(f"{event.data.get('action')} failed: {event.data.get('message', '')}", started)
        if piece:
            started = True
            yield piece
    if not started:
        yield "(no reply)"


def _block(text: str, started: bool) -> str | None:
    if not text:
        return None
    return f"\n\n{text}" if started else text


def confirmation_text(ask: Mapping[str, Any]) -> str:
    """A confirmation as words, since OpenAI clients have no buttons: the runner reads the reply."""
    args = json.dumps(ask.get("arguments") or {}, ensure_ascii=False)
    lead = "I'm still waiting for your answer. " if ask.get("reminder") else ""
    credits = ask.get("estimated_credits")
    cost = f" Estimated credits: {credits}." if credits else ""
    return (
        f"{lead}Before I run **{ask.get('action')}** with `{args}` I need your OK: "
        f"{ask.get('summary', '')}.{cost}\nPlease reply yes or no."
    )


# --- request parsing ---------------------------------------------------------------------------------


async def _json_object(request: web.Request) -> Mapping[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def last_user_message(messages: Any) -> str:
    """The newest user message's text; earlier ones are already in the agent's memory."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", "messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _content_text(message.get("content")).strip()
            if not text:
                raise BadRequest("The last user message is empty.", "messages")
            return text
    raise BadRequest("'messages' has no user message.", "messages")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def conversation_of(request: web.Request, body: Mapping[str, Any]) -> str:
    """A usable id as given; anything else (an e-mail address, say) hashed into one, so every
    client-chosen string still names one stable conversation."""
    raw = request.headers.get("X-Conversation-Id") or body.get("user") or DEFAULT_CONVERSATION
    if not isinstance(raw, str):
        raise BadRequest("'user' must be a string.", "user")
    if _CONVERSATION_ID.fullmatch(raw):
        return raw
    return "u-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def _optional_id(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1:
        raise BadRequest(f"'{name}' must be a positive integer.", name)
    return number


# --- responses ---------------------------------------------------------------------------------------


async def _stream(
    request: web.Request, completion_id: str, events: AsyncIterator[AgentEvent], headers: dict[str, str]
) -> web.StreamResponse:
    turn = assistant_text(sse.detached(request.app, events))
    response = await sse.open_stream(request, headers)
    try:
        await response.write(sse.frame(chunk(completion_id, {"role": "assistant", "content": ""})))
        async for piece in turn:
            if not piece:
                await response.write(sse.KEEP_ALIVE)
                continue
            await response.write(sse.frame(chunk(completion_id, {"content": piece})))
        await response.write(sse.frame(chunk(completion_id, {}, finish_reason="stop")))
        await response.write(sse.frame("[DONE]"))
        await response.write_eof()
    except ConnectionResetError:  # the client left; the turn carries on in its own task
        pass
    return response


def chunk(completion_id: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def completion(completion_id: str, text: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def openai_error(message: str, param: str | None = None, status: int = 400) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return web.json_response(body, status=status)
