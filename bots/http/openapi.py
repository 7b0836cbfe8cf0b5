"""OpenAPI 3.1 for the REST surface, generated from the registry, and a plain HTML reference page.

Nothing here is written per action: parameters and request bodies come from each action's input
model, responses from its handler's return annotation (pydantic JSON Schema, its ``$defs`` hoisted
into ``components/schemas``), wrapped in the same envelope the handlers answer with. The spec is
built once, on first request, and kept on the app.
"""

from __future__ import annotations

import copy
import html
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, get_type_hints

import pydantic_core
from aiohttp import web
from pydantic import TypeAdapter

from bots.http.auth import REFRESH_PATH, TOKEN_PATH, LoginIn, RefreshIn, TokenPair
from bots.http.chat import CONVERSATION_ID_PATTERN, ChatIn, ResumeIn
from bots.http.rest import CONFIRM, ActionRoute, PendingRoute, action_routes, pending_routes
from tools.common import Page

SPEC_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/v1/docs"
REF = "#/components/schemas/{model}"
SPEC = web.AppKey("igny8_openapi_spec", dict)  # a cache: filled on first request

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code"},
                "message": {"type": "string", "description": "What went wrong and what to do about it"},
                "details": {"description": "Per-field errors, a confirmation request, limits…"},
            },
        },
    },
}
ERRORS = {
    "400": "Invalid input; `details` names each offending field",
    "401": "Missing, expired or invalid credentials",
    "402": "Not enough credits, or a plan limit reached",
    "403": "Your role may not do this",
    "404": "No such object (objects of other accounts look the same)",
    "409": "Needs confirmation (`details` holds the request; repeat with `confirm=true`) or conflicts",
    "413": "Body larger than the upload limit",
    "429": "Too many write requests; retry after `Retry-After` seconds",
}
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": f"Access token from POST {TOKEN_PATH}; an API key (igny8_…) works here too",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "apiKeyAuthorization": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Api-Key igny8_…`",
    },
}


def envelope(data_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data_schema},
    }


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error_responses(codes: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}
    out["default"] = {"$ref": "#/components/responses/Unexpected"}
    return out


# --- building ---------------------------------------------------------------------------------------


class SpecBuilder:
    """One pass over the routes: collect every schema in one pydantic call (so shared models get one
    component each), then lay out the paths."""

    def __init__(self, routes: list[ActionRoute], pending: list[PendingRoute]) -> None:
        self.routes = routes
        self.pending = pending
        self.schemas: dict[str, Any] = {}
        self.page_components: set[str] = set()

    def build(self) -> dict[str, Any]:
        inputs, outputs = self._generate()
        paths: dict[str, dict[str, Any]] = defaultdict(dict)
        for route in self.routes:
            for method in route.methods:
                paths[route.path][method.lower()] = self._operation(route, method, inputs, outputs)
        for pending in self.pending:
            paths[pending.full_path][pending.method.lower()] = self._pending(pending)
        paths.update(self._fixed_paths())
        paths.update(_chat_paths(inputs))
        for name in self.page_components:
            self._http_page(self.schemas[name])
        responses = self._responses()
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "IGNY8 API",
                "version": "1.0.0",
                "description": (
                    "Every action of the IGNY8 service. Answers are `{success, data}` or `{success, error}`; "
                    "lists are paginated as `{count, next, previous, results}` with absolute URLs."
                ),
            },
            "servers": [{"url": "/"}],
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "responses": responses,
                "securitySchemes": SECURITY_SCHEMES,
            },
            "security": [{"bearerAuth": []}, {"apiKeyHeader": []}, {"apiKeyAuthorization": []}],
            "tags": sorted(
                (
                    {"name": t}
                    for t in {r.action.module for r in self.routes}
                    | {p.module for p in self.pending}
                    | {"chat"}
                ),
                key=lambda t: t["name"],
            ),
        }

    def _generate(self) -> tuple[dict[str, Any], dict[str, Any]]:
        keyed: list[tuple[tuple[str, str], Any, TypeAdapter[Any]]] = []
        for route in self.routes:
            act = route.action
            keyed.append((("in", act.name), "validation", TypeAdapter(act.input_model)))
            returns = get_type_hints(act.handler).get("return", Any)
            keyed.append((("out", act.name), "serialization", TypeAdapter(returns)))
        fixed = (("login", LoginIn), ("refresh", RefreshIn), ("chat", ChatIn), ("resume", ResumeIn))
        for name, model in fixed:
            keyed.append((("in", name), "validation", TypeAdapter(model)))
        keyed.append((("out", "token"), "serialization", TypeAdapter(TokenPair)))
        by_key, defs = TypeAdapter.json_schemas(
            [(key, mode, adapter) for key, mode, adapter in keyed], ref_template=REF
        )
        self.schemas.update(defs.get("$defs", {}))
        inputs = {key[1]: schema for (key, _), schema in by_key.items() if key[0] == "in"}
        outputs = {key[1]: schema for (key, _), schema in by_key.items() if key[0] == "out"}
        for route in self.routes:
            returns = get_type_hints(route.action.handler).get("return")
            if isinstance(returns, type) and issubclass(returns, Page):
                self.page_components.add(outputs[route.action.name]["$ref"].rsplit("/", 1)[-1])
        return inputs, outputs

    def _http_page(self, schema: dict[str, Any]) -> None:
        """Pages go out in DRF's shape: ``next``/``previous`` are URLs, page numbers are in them."""
        props = schema.get("properties", {})
        for name in ("page", "page_size"):
            props.pop(name, None)
        for name in ("next", "previous"):
            props[name] = {"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}], "title": name}
        schema["required"] = [r for r in schema.get("required", []) if r not in ("page", "page_size")]

    def _input_schema(self, inputs: dict[str, Any], name: str) -> dict[str, Any]:
        schema = inputs[name]
        if "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return copy.deepcopy(schema)

    def _operation(
        self, route: ActionRoute, method: str, inputs: dict[str, Any], outputs: dict[str, Any]
    ) -> dict[str, Any]:
        act = route.action
        schema = self._input_schema(inputs, act.name)
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        params = [
            _parameter(name, "path", props.pop(name, {"type": "string"}), True) for name in route.path_params
        ]
        required -= set(route.path_params)
        op: dict[str, Any] = {
            "operationId": act.name.replace(".", "_") + ("_partial" if method == "PATCH" else ""),
            "summary": act.summary,
            "description": _describe(route, method),
            "tags": [act.module],
        }
        if method in ("GET", "DELETE"):
            params += [_parameter(n, "query", s, n in required) for n, s in props.items()]
        elif props or act.confirm:
            op["requestBody"] = _request_body(schema, props, required, act.confirm, partial=method == "PATCH")
        if act.confirm:
            params.append(
                _parameter(
                    CONFIRM, "query", {"type": "boolean"}, False, "Confirm the action (or body `confirm`)"
                )
            )
        if params:
            op["parameters"] = params
        op["responses"] = {
            str(route.success_status): _success(act.streams, outputs[act.name]),
            **error_responses(_error_codes(method)),
        }
        return op

    def _pending(self, pending: PendingRoute) -> dict[str, Any]:
        op: dict[str, Any] = {
            "operationId": f"pending_{pending.method.lower()}_{_slug(pending.path)}",
            "summary": pending.summary,
            "description": f"Part of the {pending.module} module, which is not available yet: answers 501.",
            "tags": [pending.module],
            "responses": {"501": {"$ref": "#/components/responses/E501"}, **error_responses(["401"])},
        }
        names = [seg.strip("{}") for seg in pending.path.split("/") if seg.startswith("{")]
        if names:
            op["parameters"] = [_parameter(n, "path", {"type": "string"}, True) for n in names]
        return op

    def _fixed_paths(self) -> dict[str, Any]:
        public: list[dict[str, Any]] = []
        token = {
            "post": {
                "operationId": "auth_token",
                "summary": "Log in with email and password: an access token (15 min) and a refresh token",
                "tags": ["auth"],
                "security": public,
                "requestBody": {
                    "required": True,
                    "content": json_content({"$ref": REF.format(model="LoginIn")}),
                },
                "responses": {
                    "200": {
                        "description": "Tokens",
                        "content": json_content(envelope({"$ref": REF.format(model="TokenPair")})),
                    },
                    **error_responses(["400", "401"]),
                },
            }
        }
        refresh = copy.deepcopy(token)
        refresh["post"].update(
            operationId="auth_token_refresh",
            summary="Trade a refresh token for a new pair",
            requestBody={"required": True, "content": json_content({"$ref": REF.format(model="RefreshIn")})},
        )
        plain = {"type": "object", "additionalProperties": True}
        return {
            TOKEN_PATH: token,
            REFRESH_PATH: refresh,
            "/healthz": _probe_path("healthz", "The process is up", plain),
            "/readyz": _probe_path("readyz", "The database (and Redis, if configured) answer", plain),
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "tags": ["ops"],
                    "security": public,
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        }

    def _responses(self) -> dict[str, Any]:
        ref = {"$ref": REF.format(model="ErrorEnvelope")}
        self.schemas["ErrorEnvelope"] = ERROR_SCHEMA
        out = {
            f"E{code}": {"description": text, "content": json_content(ref)} for code, text in ERRORS.items()
        }
        out["E429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        out["E501"] = {"description": "This module is not available yet", "content": json_content(ref)}
        out["Unexpected"] = {
            "description": "Any other error (500s carry an error id)",
            "content": json_content(ref),
        }
        return out


def _parameter(
    name: str, where: str, schema: dict[str, Any], required: bool, text: str | None = None
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    description = text or schema.get("description")
    if description:
        param["description"] = description
    return param


def _request_body(
    schema: dict[str, Any], props: dict[str, Any], required: set[str], confirm: bool, *, partial: bool
) -> dict[str, Any]:
    body = {k: v for k, v in schema.items() if k not in ("properties", "required", "title")}
    body["type"] = "object"
    body["properties"] = dict(props)
    if confirm:
        body["properties"][CONFIRM] = {"type": "boolean", "description": "Confirm the action"}
    if required:
        body["required"] = sorted(required)
    uploads = [n for n, s in props.items() if s.get("format") == "binary"]
    media = "multipart/form-data" if uploads else "application/json"
    return {"required": bool(required) and not partial, "content": {media: {"schema": body}}}


def _success(streams: str | None, data_schema: dict[str, Any]) -> dict[str, Any]:
    if streams:
        return {
            "description": f"Streamed {streams} (an attachment)",
            "content": {streams: {"schema": {"type": "string"}}},
        }
    return {"description": "OK", "content": json_content(envelope(data_schema))}


def _error_codes(method: str) -> list[str]:
    """Reads can be refused, not found or unauthorised; writes can also cost, conflict or be throttled."""
    codes = ["400", "401", "403", "404"]
    if method != "GET":
        codes += ["402", "409", "429"]
    if method in ("POST", "PUT", "PATCH"):
        codes.append("413")
    return sorted(codes)


def _describe(route: ActionRoute, method: str) -> str:
    act = route.action
    notes = [f"Action `{act.name}`. Roles: {', '.join(sorted(r.value for r in act.roles))}."]
    if method == "PATCH":
        notes.append("Partial update: send only the fields to change.")
    if act.confirm:
        notes.append("Asks first: without `confirm=true` it answers 409 with the confirmation request.")
    if act.long:
        notes.append("Long-running: runs to completion before answering.")
    if act.streams:
        notes.append(f"Streams `{act.streams}`.")
    return " ".join(notes)


CHAT_EVENTS = (
    "Server-Sent Events, `event: <kind>` / `data: <json>`: `start` (the conversation id) first, then "
    "`token`, `message`, `tool_call`, `tool_result`, `confirm` (answer it with …/resume), `job`, "
    "`progress`, `queued`, `error` as the agent works, comment lines as keep-alives, `done` last."
)


def _chat_paths(inputs: dict[str, Any]) -> dict[str, Any]:
    """The conversational surface (``bots.http.chat``): turns stream as SSE, history is JSON."""
    conversation = _parameter(
        "conversation_id", "path", {"type": "string", "pattern": CONVERSATION_ID_PATTERN}, True
    )
    stream = {"description": CHAT_EVENTS, "content": {"text/event-stream": {"schema": {"type": "string"}}}}

    def turn(op_id: str, summary: str, body: str) -> dict[str, Any]:
        return {
            "operationId": op_id,
            "summary": summary,
            "tags": ["chat"],
            "requestBody": {"required": True, "content": json_content(inputs[body])},
            "responses": {"200": stream, **error_responses(["400", "401"])},
        }

    send = turn("chat_send", "Send a message to the agent; the turn streams", "chat")
    with_files = {
        "allOf": [
            inputs["chat"],
            {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "Files for the agent's tools (e.g. a CSV of keywords to import)",
                    }
                },
            },
        ]
    }
    send["requestBody"]["content"]["multipart/form-data"] = {"schema": with_files}

    transcript = {
        "type": "object",
        "required": ["conversation_id", "messages"],
        "properties": {
            "conversation_id": {"type": "string"},
            "messages": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        },
    }
    return {
        "/api/v1/chat": {"post": send},
        "/api/v1/chat/{conversation_id}/resume": {
            "post": {
                **turn("chat_resume", "Answer a confirmation (approve, edit or reject)", "resume"),
                "parameters": [conversation],
            }
        },
        "/api/v1/chat/{conversation_id}": {
            "get": {
                "operationId": "chat_history",
                "summary": "A conversation's messages",
                "tags": ["chat"],
                "parameters": [conversation],
                "responses": {
                    "200": {"description": "OK", "content": json_content(envelope(transcript))},
                    **error_responses(["400", "401"]),
                },
            }
        },
    }


def _probe_path(op_id: str, summary: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["ops"],
            "security": [],
            "responses": {
                "200": {"description": "OK", "content": json_content(envelope(data))},
                "503": {"$ref": "#/components/responses/Unexpected"},
            },
        }
    }


def _slug(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path).strip("_")


def build_spec() -> dict[str, Any]:
    routes = action_routes()
    return SpecBuilder(routes, pending_routes(routes)).build()


def spec_of(app: web.Application) -> dict[str, Any]:
    cache = app[SPEC]
    if "spec" not in cache:
        cache["spec"] = build_spec()
    return cache["spec"]


# --- handlers -------------------------------------------------------------------------------------


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=pydantic_core.to_json(spec_of(request.app)), content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=render_docs(spec_of(request.app)), content_type="text/html")


def render_docs(spec: dict[str, Any]) -> str:
    """A self-contained reference (no scripts, nothing fetched from elsewhere): operations by tag."""
    by_tag: dict[str, list[str]] = defaultdict(list)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            params = ", ".join(
                f"<code>{html.escape(p['name'])}</code>{'*' if p.get('required') else ''}"
                for p in op.get("parameters", [])
            )
            body = op.get("requestBody", {}).get("content", {})
            fields = next(iter(body.values()), {}).get("schema", {}).get("properties", {})
            body_text = ", ".join(f"<code>{html.escape(n)}</code>" for n in fields)
            by_tag[op["tags"][0]].append(
                f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td><td>{params}</td><td>{body_text}</td></tr>"
            )
    sections = "".join(
        f"<h2 id='{html.escape(tag)}'>{html.escape(tag)}</h2><table><tr><th>Method</th><th>Path</th>"
        f"<th>Summary</th><th>Parameters</th><th>Body</th></tr>{''.join(rows)}</table>"
        for tag, rows in sorted(by_tag.items())
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>IGNY8 API</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}"
        "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;"
        "text-align:left;vertical-align:top}.m{font-weight:bold}code{font-size:.9em}</style></head><body>"
        f"<h1>IGNY8 API</h1><p>{html.escape(spec['info']['description'])}</p>"
        f"<p>Machine-readable: <a href='{SPEC_PATH}'>{SPEC_PATH}</a> (OpenAPI 3.1). Authenticate with "
        f"<code>Authorization: Bearer &lt;token&gt;</code> from <code>POST {TOKEN_PATH}</code>, "
        "or an API key (<code>X-API-Key</code>).</p>"
        f"{sections}</body></html>"
    )


def setup_openapi(app: web.Application) -> None:
    app[SPEC] = {}
    app.router.add_get(SPEC_PATH, openapi_json, name="openapi")
    app.router.add_get(DOCS_PATH, docs_page, name="docs")
