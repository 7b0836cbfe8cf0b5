"""A local OpenAI-compatible server speaking the real wire protocol, scriptable per test.

Routes (under ``/v1``, so ``stub.base_url`` is what a client gets as its base URL):

* ``POST /v1/chat/completions`` — non-streaming JSON, or SSE (``stream: true``) as
  ``data: {chunk}`` lines ending ``data: [DONE]``; text content and ``tool_calls`` in both, usage
  chunk when ``stream_options.include_usage`` is set.
* ``POST /v1/images/generations`` — ``b64_json`` or ``url`` like DALL·E; gpt-image models return
  base64 plus token usage and reject ``response_format`` as the real API does.
* ``GET /v1/models`` and ``GET /files/{name}`` (the images behind returned URLs).

Behaviour is scripted with :class:`Reply` objects queued per route (see the ``Reply.*`` helpers
below), plus server-wide switches: the accepted ``response_format`` types (to act like llama.cpp),
an enforced RPM limit, and whether error messages echo the API key (to prove clients redact it).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from aiohttp import web

from tests.stubs.scripted import RecordedRequest, Reply, ScriptedServer, image_bytes

CHAT = "chat"
IMAGES = "images"
LLAMA_CPP_FORMAT_ERROR = 'response_format type must be one of "text" or "json_object", but got: {got}'


# -- reply builders -----------------------------------------------------------------------------------


def json_reply(obj: Any, **kw: Any) -> Reply:
    """Assistant content that is exactly this object as JSON."""
    return Reply(content=json.dumps(obj), **kw)


def text_reply(content: str, **kw: Any) -> Reply:
    return Reply(content=content, **kw)


def truncated_reply(content: str = '{"title": "An unfinished', **kw: Any) -> Reply:
    """Output cut off at max_tokens: ``finish_reason: "length"``."""
    return Reply(content=content, finish_reason="length", **kw)


def tool_call_reply(*calls: tuple[str, dict[str, Any]], content: str | None = None) -> Reply:
    tool_calls = [
        {
            "id": f"call_{i}_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": n, "arguments": json.dumps(a)},
        }
        for i, (n, a) in enumerate(calls)
    ]
    return Reply(content=content, tool_calls=tool_calls, finish_reason="tool_calls")


def error_reply(
    status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None, **kw: Any
) -> Reply:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Reply(status=status, body=body, **kw)


def rate_limit_reply(retry_after: str | None = "1", *, retry_after_ms: str | None = None) -> Reply:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return error_reply(
        429, "Rate limit reached for requests", type_="requests", code="rate_limit_exceeded", headers=headers
    )


def server_error_reply(status: int = 500) -> Reply:
    return error_reply(status, "The server had an error while processing your request.", type_="server_error")


def slow_reply(delay_s: float, then: Reply | None = None) -> Reply:
    reply = then or Reply()
    reply.delay_s = delay_s
    return reply


def dropped_connection() -> Reply:
    return Reply(drop=True)


# -- the server ---------------------------------------------------------------------------------------


class OpenAIStub(ScriptedServer):
    """Scriptable OpenAI-compatible server. ``api_key=None`` accepts any (or no) Authorization."""

    def __init__(
        self, *, api_key: str | None = "sk-stub-0123456789abcdef", model: str = "gpt-4o-mini"
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.model = model
        self.models = [model, "dall-e-3", "gpt-image-1"]
        self.accepted_formats: set[str] = {"json_schema", "json_object", "text"}
        self.format_reject_status = 400
        self.echo_key_in_errors = False

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # scripting shortcuts
    def chat(self, *replies: Reply) -> None:
        self.enqueue(CHAT, *replies)

    def images(self, *replies: Reply) -> None:
        self.enqueue(IMAGES, *replies)

    def act_like_llama_cpp(self, status: int = 400) -> None:
        """Refuse ``json_schema`` like older llama.cpp servers (400, or 500 in some builds)."""
        self.accepted_formats = {"json_object", "text"}
        self.format_reject_status = status

    def chat_requests(self) -> list[RecordedRequest]:
        return self.requests_to("/chat/completions")

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/files/{name}", self._file)
        return app

    # -- gatekeeping shared by every route ---------------------------------------------------------

    def _gate(self, req: RecordedRequest) -> web.Response | None:
        """Auth, then the enforced RPM: the order a real API applies them."""
        if self.api_key is not None and req.auth != f"Bearer {self.api_key}":
            sent = req.auth.removeprefix("Bearer ")
            shown = sent if self.echo_key_in_errors else f"{sent[:3]}***{sent[-4:]}"
            return self._error(
                req, 401, f"Incorrect API key provided: {shown}.", "invalid_request_error", "invalid_api_key"
            )
        wait = self.rate_limited(req.at)
        if wait is not None:
            resp = self._error(req, 429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")
            resp.headers.update(self.rate_limit_headers(wait))
            return resp
        return None

    def _error(
        self, req: RecordedRequest, status: int, message: str, type_: str, code: str | None
    ) -> web.Response:
        if self.echo_key_in_errors and self.api_key and self.api_key not in message:
            message = f"{message} (key {self.api_key})"
        req.status = status
        req.response = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return web.json_response(req.response, status=status)

    async def _scripted(
        self, request: web.Request, req: RecordedRequest, route: str
    ) -> tuple[Reply | None, web.StreamResponse | None]:
        reply = self.next_reply(route)
        if not await self.apply_latency(request, reply):
            req.status = -1
            return reply, web.Response(status=499)
        if reply is not None and reply.is_override:
            req.status = reply.status
            if (
                self.echo_key_in_errors
                and isinstance(reply.body, dict)
                and isinstance(reply.body.get("error"), dict)
            ):
                reply.body["error"]["message"] = f"{reply.body['error']['message']} (key {self.api_key})"
            req.response = reply.body
            return reply, self.override_response(reply)
        return reply, None

    # -- chat --------------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        req = await self.record(request)
        if (denied := self._gate(req)) is not None:
            return denied
        body = req.json if isinstance(req.json, dict) else {}
        fmt = (body.get("response_format") or {}).get("type", "text")
        if fmt not in self.accepted_formats:
            return self._error(
                req,
                self.format_reject_status,
                LLAMA_CPP_FORMAT_ERROR.format(got=fmt),
                "invalid_request_error",
                None,
            )
        reply, override = await self._scripted(request, req, CHAT)
        if override is not None:
            return override
        if reply is None:
            return self._error(req, 500, "stub: no chat reply scripted", "server_error", None)
        req.status = 200
        if body.get("stream"):
            return await self._stream(request, body, reply)
        return web.json_response(self._completion(body, reply))

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        if reply.usage is not None:
            usage = dict(reply.usage)
            usage.setdefault(
                "total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            )
            return usage
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4 + 1
        completion = len(reply.content or "") // 4 + 1
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason or "stop",
                }
            ],
            "usage": self._usage(body, reply),
        }

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: Reply) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model or body.get("model") or self.model,
        }
        for chunk in self._chunks(reply):
            await resp.write(f"data: {json.dumps({**base, **chunk})}\n\n".encode())
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(
                f"data: {json.dumps({**base, 'choices': [], 'usage': self._usage(body, reply)})}\n\n".encode()
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @staticmethod
    def _chunks(reply: Reply) -> list[dict[str, Any]]:
        """Deltas as OpenAI sends them: role first, content in pieces, each tool call opened with its
        id/name and then its arguments in pieces, and a final empty delta with the finish_reason."""

        def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]}

        out = [delta({"role": "assistant", "content": "" if not reply.tool_calls else None})]
        text = reply.content or ""
        out += [delta({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
        for index, call in enumerate(reply.tool_calls or []):
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            out.append(delta({"tool_calls": [head]}))
            args = call["function"]["arguments"]
            out += [
                delta({"tool_calls": [{"index": index, "function": {"arguments": args[i : i + 5]}}]})
                for i in range(0, len(args), 5)
            ]
        out.append(delta({}, reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")))
        return out

    # -- images ------------------------------------------------------------------------------------

    async def _images(self, request: web.Request) -> web.StreamResponse:
        req = await self.record(request)
        if (denied := self._gate(req)) is not None:
            return denied
        body = req.json if isinstance(req.json, dict) else {}
        problem = self._image_problem(body)
        if problem:
            return self._error(req, 400, problem, "invalid_request_error", None)
        _, override = await self._scripted(request, req, IMAGES)
        if override is not None:
            return override
        req.status = 200
        return web.json_response(self._image_result(body))

    @staticmethod
    def _image_problem(body: dict[str, Any]) -> str | None:
        model = str(body.get("model") or "dall-e-2")
        if not body.get("prompt"):
            return "'prompt' is a required property"
        if model.startswith("gpt-image") and "response_format" in body:
            return "Unknown parameter: 'response_format'."
        if body.get("response_format", "url") not in ("url", "b64_json"):
            return (
                f"Invalid value: '{body.get('response_format')}'. Supported values are: 'url' and 'b64_json'."
            )
        allowed = {
            "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
            "dall-e-2": {"256x256", "512x512", "1024x1024"},
            "gpt-image-1": {"1024x1024", "1536x1024", "1024x1536", "auto"},
        }.get(model)
        if allowed and body.get("size", "1024x1024") not in allowed:
            return f"Invalid value: '{body.get('size')}'. Supported values are: {sorted(allowed)}."
        return None

    def _image_result(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model") or "dall-e-2")
        png = image_bytes("PNG")
        result: dict[str, Any] = {"created": int(time.time())}
        if model.startswith("gpt-image"):
            result["data"] = [{"b64_json": base64.b64encode(png).decode()}]
            result["usage"] = {"input_tokens": 12, "output_tokens": 4160, "total_tokens": 4172}
            result["output_format"] = "png"
        elif body.get("response_format", "url") == "b64_json":
            result["data"] = [{"b64_json": base64.b64encode(png).decode(), "revised_prompt": body["prompt"]}]
        else:
            result["data"] = [
                {"url": f"{self.url}/files/{uuid.uuid4().hex}.png", "revised_prompt": body["prompt"]}
            ]
        return result

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=image_bytes("PNG"), content_type="image/png")

    # -- models ------------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        req = await self.record(request)
        if (denied := self._gate(req)) is not None:
            return denied
        req.status = 200
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "stub"} for m in self.models]
        return web.json_response({"object": "list", "data": data})
