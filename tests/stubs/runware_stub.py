"""A local Runware HTTP task API (``POST /v1`` with a JSON array of tasks), scriptable per test.

It checks what the real API checks that our client could get wrong: the body is an array, an
``authentication`` task carries a valid ``apiKey``, and each ``imageInference`` task has a UUIDv4
``taskUUID``, a 2-3000 character ``positivePrompt``, a ``model``, ``width``/``height`` multiples of
64 in 128-2048, and a known ``outputType``/``outputFormat``. Failures come back in Runware's shape:
``{"errors": [{"code", "message", "parameter", "taskType", "taskUUID"}]}``.

Results: ``{"data": [{"taskType": "authentication", ...}, {"taskType": "imageInference",
"taskUUID", "imageUUID", "imageURL" | "imageBase64Data" | "imageDataURI", "seed", "cost"?}]}`` —
the authentication entry is included so clients must match results by ``taskUUID``.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from aiohttp import web

from tests.stubs.scripted import RecordedRequest, Reply, ScriptedServer, image_bytes

TASKS = "tasks"
COST_PER_IMAGE = 0.0013
_FORMATS = {
    "JPG": ("JPEG", "image/jpeg", "jpg"),
    "PNG": ("PNG", "image/png", "png"),
    "WEBP": ("WEBP", "image/webp", "webp"),
}


def runware_error(
    code: str, message: str, *, status: int = 400, parameter: str | None = None, **kw: Any
) -> Reply:
    err: dict[str, Any] = {"code": code, "message": message, "taskType": "imageInference"}
    if parameter:
        err["parameter"] = parameter
    return Reply(status=status, body={"errors": [err]}, **kw)


class RunwareStub(ScriptedServer):
    """Scriptable Runware server; ``stub.base_url`` is the task endpoint (``.../v1``)."""

    def __init__(self, *, api_key: str = "rw-stub-key-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.echo_key_in_errors = False
        self._files: dict[str, tuple[bytes, str]] = {}

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def tasks(self, *replies: Reply) -> None:
        self.enqueue(TASKS, *replies)

    def task_requests(self) -> list[RecordedRequest]:
        return self.requests_to("/v1")

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1", self._tasks)
        app.router.add_get("/images/{name}", self._file)
        return app

    async def _tasks(self, request: web.Request) -> web.StreamResponse:
        req = await self.record(request)
        tasks = req.json
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            return self._errors(
                req, 400, [self._err("invalidRequestBody", "The request body must be an array of tasks.")]
            )
        auth = next((t for t in tasks if t.get("taskType") == "authentication"), None)
        if auth is None or auth.get("apiKey") != self.api_key:
            sent = (auth or {}).get("apiKey", "")
            shown = f" (got {sent})" if self.echo_key_in_errors else ""
            message = f"Invalid API key. Get one at https://my.runware.ai/signup{shown}"
            return self._errors(req, 401, [self._err("invalidApiKey", message, "apiKey", "authentication")])
        wait = self.rate_limited(req.at)
        if wait is not None:
            resp = self._errors(req, 429, [self._err("rateLimitExceeded", "Too many requests.")])
            resp.headers.update(self.rate_limit_headers(wait))
            return resp
        reply = self.next_reply(TASKS)
        if not await self.apply_latency(request, reply):
            req.status = -1
            return web.Response(status=499)
        if reply is not None and reply.is_override:
            req.status = reply.status
            req.response = reply.body
            return self.override_response(reply)
        problems = [p for t in tasks if t.get("taskType") == "imageInference" for p in self._problems(t)]
        if problems:
            return self._errors(req, 400, problems)
        data: list[dict[str, Any]] = [
            {"taskType": "authentication", "connectionSessionUUID": str(uuid.uuid4())}
        ]
        for task in tasks:
            if task.get("taskType") == "imageInference":
                data += self._results(task)
        req.status = 200
        return web.json_response({"data": data})

    @staticmethod
    def _err(
        code: str,
        message: str,
        parameter: str | None = None,
        task_type: str = "imageInference",
        task_uuid: str | None = None,
    ) -> dict[str, Any]:
        err: dict[str, Any] = {"code": code, "message": message, "taskType": task_type}
        if parameter:
            err["parameter"] = parameter
        if task_uuid:
            err["taskUUID"] = task_uuid
        return err

    def _errors(self, req: RecordedRequest, status: int, errors: list[dict[str, Any]]) -> web.Response:
        req.status = status
        req.response = {"errors": errors}
        return web.json_response(req.response, status=status)

    def _problems(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        tid = str(task.get("taskUUID", ""))
        out = []

        def bad(code: str, message: str, parameter: str) -> None:
            out.append(self._err(code, message, parameter, task_uuid=tid or None))

        try:
            if uuid.UUID(tid).version != 4:
                raise ValueError
        except ValueError:
            bad("invalidTaskUUID", "taskUUID must be a UUID v4 string.", "taskUUID")
        prompt = task.get("positivePrompt")
        if not isinstance(prompt, str) or not 2 <= len(prompt) <= 3000:
            bad(
                "invalidPositivePrompt",
                "positivePrompt must be between 2 and 3000 characters.",
                "positivePrompt",
            )
        if not task.get("model"):
            bad("missingModel", "model is required.", "model")
        for side in ("width", "height"):
            value = task.get(side)
            if not isinstance(value, int) or value % 64 or not 128 <= value <= 2048:
                bad(f"invalid{side.title()}", f"{side} must be a multiple of 64 between 128 and 2048.", side)
        if task.get("outputType", "URL") not in ("URL", "base64Data", "dataURI"):
            bad("invalidOutputType", "outputType must be URL, base64Data or dataURI.", "outputType")
        if str(task.get("outputFormat", "JPG")).upper() not in _FORMATS:
            bad("invalidOutputFormat", "outputFormat must be JPG, PNG or WEBP.", "outputFormat")
        return out

    def _results(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        pil_format, mime, ext = _FORMATS[str(task.get("outputFormat", "JPG")).upper()]
        out = []
        for _ in range(int(task.get("numberResults", 1))):
            image_uuid = str(uuid.uuid4())
            raw = image_bytes(pil_format)
            item: dict[str, Any] = {
                "taskType": "imageInference",
                "taskUUID": task["taskUUID"],
                "imageUUID": image_uuid,
                "seed": 1234567,
                "NSFWContent": False,
            }
            output_type = task.get("outputType", "URL")
            if output_type == "base64Data":
                item["imageBase64Data"] = base64.b64encode(raw).decode()
            elif output_type == "dataURI":
                item["imageDataURI"] = f"data:{mime};base64,{base64.b64encode(raw).decode()}"
            else:
                self._files[f"{image_uuid}.{ext}"] = (raw, mime)
                item["imageURL"] = f"{self.url}/images/{image_uuid}.{ext}"
            if task.get("includeCost"):
                item["cost"] = COST_PER_IMAGE
            out.append(item)
        return out

    async def _file(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])
