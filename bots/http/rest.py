"""REST under ``/api/v1/``, derived from the action registry: one route per declared ``Route``.

No route is written by hand. Each action's declaration gives the method and path; its input model
says how to read arguments (path segments, the query string for GET/DELETE, a JSON body or a
multipart form for POST/PUT/PATCH) and ``tools.registry.invoke`` does the rest (validation, role,
confirmation, the tenant-bound transaction). PATCH is accepted wherever PUT is declared, because
every update action already applies only the fields it is given.

Answers use one envelope: ``{"success": true, "data": …}`` or ``{"success": false, "error": {"code",
"message", "details"}}``; a page's ``next``/``previous`` become absolute URLs, as the seed's DRF
pagination gives them. Seed endpoints of modules not built yet answer 501 ``not_implemented``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import pydantic_core
from aiohttp import web
from multidict import MultiDictProxy
from pydantic.fields import FieldInfo

from bots.http.keys import DB, tenant_of
from storage.exceptions import FieldError, ValidationFailed
from tools.common import Page
from tools.registry import Action, ActionInput, check_role, invoke, registry

API_PREFIX = "/api/v1/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
CONFIRM = "confirm"
_TRUE = frozenset({"1", "true", "yes", "on"})
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# Set once a streamed answer has sent its headers: an error after that can only cut the stream.
STREAMING = web.RequestKey("igny8_streaming", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- the envelope ------------------------------------------------------------------------------------


def ok(data: Any, *, status: int = 200) -> web.Response:
    """Success envelope; pydantic serialises models, datetimes and decimals exactly as the CLI shows them."""
    body = pydantic_core.to_json({"success": True, "data": data})
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    body = pydantic_core.to_json({"success": False, "error": error})
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def page_url(request: web.Request, page: int | None) -> str | None:
    """The same request with another page number, as an absolute URL (DRF's ``next``/``previous``)."""
    return None if page is None else str(request.url.update_query(page=page))


def http_data(result: Any, request: web.Request) -> Any:
    """What goes under ``data``: pages in DRF's shape (plus any totals a page subclass adds)."""
    if not isinstance(result, Page):
        return result
    extras = {
        name: getattr(result, name) for name in type(result).model_fields if name not in Page.model_fields
    }
    return {
        "count": result.count,
        "next": page_url(request, result.next),
        "previous": page_url(request, result.previous),
        "results": result.results,
        **extras,
    }


# --- the route table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRoute:
    """Where an action answers over HTTP; ``methods`` adds PATCH next to a declared PUT."""

    action: Action
    path: str
    methods: tuple[str, ...]

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.path))

    @property
    def success_status(self) -> int:
        """201 for the ``*.create`` actions, as DRF answers a create; 200 for everything else."""
        return 201 if "POST" in self.methods and self.action.name.endswith(".create") else 200


def action_routes(actions: Iterable[Action] | None = None) -> list[ActionRoute]:
    """Every action with a route; fixed paths before parameterised ones so ``export_csv/`` is never an id."""
    routes = []
    for act in actions if actions is not None else registry:
        if act.route is None:
            continue
        method = act.route.method
        methods = (method, "PATCH") if method == "PUT" else (method,)
        routes.append(ActionRoute(act, API_PREFIX + act.route.path, methods))
    return sorted(routes, key=lambda r: (bool(r.path_params), r.path, r.methods))


@dataclass(frozen=True)
class PendingRoute:
    """A seed endpoint whose module arrives in a later release."""

    module: str
    method: str
    path: str
    summary: str

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path


# The seed's endpoints (API Endpoints section) of the modules not built yet. Anything an action
# already answers is dropped by ``pending_routes``, so registering an action retires its row here.
SEED_PENDING: tuple[PendingRoute, ...] = tuple(
    PendingRoute(module, method, path, summary)
    for module, method, path, summary in (
        ("linker", "POST", "linker/process/", "Process content for internal linking"),
        ("linker", "POST", "linker/batch_process/", "Batch process content for linking"),
        ("optimizer", "POST", "optimizer/optimize/", "Optimize content"),
        ("optimizer", "POST", "optimizer/batch_optimize/", "Batch optimize content"),
        ("optimizer", "POST", "optimizer/analyze/", "Analyze content"),
        ("publisher", "GET", "publisher/publishing-records/", "List publishing records"),
        ("publisher", "POST", "publisher/publishing-records/", "Create publishing record"),
        ("publisher", "GET", "publisher/deployments/", "List deployment records"),
        ("publisher", "POST", "publisher/deployments/", "Create deployment record"),
        ("publisher", "POST", "publisher/publish/", "Publish content"),
        ("publisher", "POST", "publisher/deploy/", "Deploy site blueprint"),
        ("publisher", "GET", "publisher/sites/{site_id}/definition/", "Get site definition"),
        ("site-builder", "GET", "site-builder/blueprints/", "List site blueprints"),
        ("site-builder", "POST", "site-builder/blueprints/", "Create site blueprint"),
        ("site-builder", "GET", "site-builder/blueprints/{id}/", "Get blueprint details"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/generate_structure/", "Generate structure"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/generate_all_pages/", "Generate all pages"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/create_tasks/", "Create tasks for pages"),
        ("site-builder", "GET", "site-builder/blueprints/{id}/progress/", "Get progress"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/clusters/attach/", "Attach clusters"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/clusters/detach/", "Detach clusters"),
        ("site-builder", "GET", "site-builder/blueprints/{id}/taxonomies/", "List taxonomies"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/taxonomies/", "Create taxonomy"),
        ("site-builder", "POST", "site-builder/blueprints/{id}/taxonomies/import/", "Import taxonomies"),
        ("site-builder", "POST", "site-builder/blueprints/bulk_delete/", "Bulk delete blueprints"),
        ("site-builder", "GET", "site-builder/pages/", "List page blueprints"),
        ("site-builder", "POST", "site-builder/pages/", "Create page blueprint"),
        ("site-builder", "GET", "site-builder/pages/{id}/", "Get page details"),
        ("site-builder", "POST", "site-builder/pages/{id}/generate_content/", "Generate content"),
        ("site-builder", "POST", "site-builder/pages/{id}/regenerate/", "Regenerate page"),
        ("site-builder", "GET", "site-builder/assets/", "List assets"),
        ("site-builder", "POST", "site-builder/assets/", "Upload asset"),
        ("site-builder", "DELETE", "site-builder/assets/", "Delete asset"),
        ("site-builder", "GET", "site-builder/metadata/", "Get metadata"),
        ("automation", "GET", "automation/rules/", "List automation rules"),
        ("automation", "POST", "automation/rules/", "Create automation rule"),
        ("automation", "GET", "automation/rules/{id}/", "Get rule details"),
        ("automation", "POST", "automation/rules/{id}/execute/", "Execute rule"),
        ("automation", "GET", "automation/scheduled-tasks/", "List scheduled tasks"),
        ("automation", "POST", "automation/scheduled-tasks/", "Create scheduled task"),
        ("integration", "GET", "integration/integrations/", "List site integrations"),
        ("integration", "POST", "integration/integrations/", "Create integration"),
        ("integration", "GET", "integration/integrations/{id}/", "Get integration details"),
        ("integration", "POST", "integration/integrations/{id}/test_connection/", "Test connection"),
        ("integration", "POST", "integration/integrations/{id}/sync/", "Sync content"),
        ("integration", "GET", "integration/integrations/{id}/sync_health/", "Get sync health"),
        ("jobs", "GET", "system/settings/task_progress/{task_id}/", "Get task progress"),
    )
)


def _covers(pattern: str, path: str) -> bool:
    """True when ``path`` is ``pattern`` or one of its instances (``{x}`` segments match anything)."""
    a, b = pattern.strip("/").split("/"), path.strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


def pending_routes(routes: Iterable[ActionRoute] | None = None) -> list[PendingRoute]:
    """The seed endpoints no registered action answers yet."""
    served = [(m, r.path) for r in routes or action_routes() for m in r.methods]
    return [
        p for p in SEED_PENDING if not any(m == p.method and _covers(p.full_path, path) for m, path in served)
    ]


def setup_rest(app: web.Application) -> None:
    routes = action_routes()
    for route in routes:
        handler = action_handler(route)
        for method in route.methods:
            app.router.add_route(method, route.path, handler, name=_route_name(route.action.name, method))
    for pending in pending_routes(routes):
        app.router.add_route(pending.method, pending.full_path, not_implemented_handler(pending))


def _route_name(action_name: str, method: str) -> str:
    base = action_name.replace(".", "-")
    return base if method != "PATCH" else f"{base}-patch"


# --- handlers -------------------------------------------------------------------------------------


def action_handler(route: ActionRoute) -> Handler:
    act = route.action

    async def handle(request: web.Request) -> web.StreamResponse:
        tenant = tenant_of(request)
        check_role(act, tenant)  # a viewer learns it may not write before being told how to write
        args, confirmed = await request_args(request, route)
        db = request.app[DB]
        if act.streams:
            return await stream_action(request, act, args, confirmed)
        result = await invoke(act.name, args, db=db, tenant=tenant, confirmed=confirmed)
        return ok(http_data(result, request), status=route.success_status)

    handle.__name__ = handle.__qualname__ = f"rest_{act.name.replace('.', '_')}"
    handle.__doc__ = act.summary
    return handle


def not_implemented_handler(pending: PendingRoute) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return error_response(
            501,
            "not_implemented",
            f"The {pending.module} module is not available yet: {pending.method} /api/v1/{pending.path} "
            f"({pending.summary.lower()}) arrives in a later release.",
            details={"module": pending.module},
        )

    return handle


async def stream_action(
    request: web.Request, act: Action, args: dict[str, Any], confirmed: bool
) -> web.StreamResponse:
    """Relay the action's chunk sink as the response body; headers go out with the first chunk, so
    anything refused before then (validation, role, a missing id) still gets the JSON envelope."""
    response = web.StreamResponse()
    response.content_type = act.streams or "application/octet-stream"
    response.charset = "utf-8"
    if act.streams == "text/csv":
        filename = f"{act.name.split('.')[0]}.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'

    async def write(chunk: str) -> None:
        if not response.prepared:
            request[STREAMING] = True
            await response.prepare(request)
        await response.write(chunk.encode())

    await invoke(
        act.name, args, db=request.app[DB], tenant=tenant_of(request), confirmed=confirmed, chunks=write
    )
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


# --- arguments ------------------------------------------------------------------------------------


async def request_args(request: web.Request, route: ActionRoute) -> tuple[dict[str, Any], bool]:
    """The action's raw arguments from path, query or body, and whether the caller confirmed."""
    model = route.action.input_model
    query = request.rel_url.query
    confirmed = _truthy(query.get(CONFIRM)) if CONFIRM not in model.model_fields else False
    if request.method in BODY_METHODS:
        _refuse_query(query, model, request.method)
        args = await body_args(request, model)
    else:
        args = multi_args(query, model, skip_empty=True)
    if CONFIRM not in model.model_fields and CONFIRM in args:
        confirmed = _truthy(args.pop(CONFIRM)) or confirmed
    return merge_path(args, request.match_info, route.path_params), confirmed


def _refuse_query(query: MultiDictProxy[str], model: type[ActionInput], method: str) -> None:
    extra = sorted(set(query) - {CONFIRM})
    if extra:
        raise ValidationFailed(
            [FieldError(name, f"send it in the {method} body, not the query string") for name in extra]
        )


def merge_path(args: dict[str, Any], match: Mapping[str, str], names: Iterable[str]) -> dict[str, Any]:
    """Path segments win; the same name in the body with another value is a mistake worth naming."""
    for name in names:
        value = match[name]
        if name in args and str(args[name]) != value:
            raise ValidationFailed.single(name, f"is {value} in the path but {args[name]!r} in the body")
        args[name] = value
    return args


async def body_args(request: web.Request, model: type[ActionInput]) -> dict[str, Any]:
    if request.content_type in FORM_TYPES:
        return multi_args(await request.post(), model, skip_empty=False)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed.single("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed.single("body", "must be a JSON object")
    return body


def multi_args(values: MultiDictProxy[Any], model: type[ActionInput], *, skip_empty: bool) -> dict[str, Any]:
    """Query strings and forms: repeated or comma-separated values for list fields, uploaded files as
    bytes; an empty value for an optional filter (``?site_id=``) means "no filter", as in DRF."""
    fields = model.model_fields
    args: dict[str, Any] = {}
    for name in dict.fromkeys(values.keys()):
        items = [_file_bytes(v) for v in values.getall(name)]
        info = fields.get(name)
        if info is not None and _is_list(info):
            args[name] = [part for item in items for part in _split(item)]
        elif len(items) > 1:
            raise ValidationFailed.single(name, "was given more than once")
        elif skip_empty and items[0] == "" and info is not None and _optional(info):
            continue
        else:
            args[name] = _as_bytes(items[0]) if info is not None and _is_bytes(info) else items[0]
    return args


def _file_bytes(value: Any) -> Any:
    return value.file.read() if isinstance(value, web.FileField) else value


def _split(item: Any) -> list[Any]:
    if not isinstance(item, str):
        return [item]
    return [part.strip() for part in item.split(",") if part.strip()]


def _as_bytes(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


def _members(info: FieldInfo) -> tuple[Any, ...]:
    annotation = info.annotation
    return (annotation, *get_args(annotation))


def _is_list(info: FieldInfo) -> bool:
    return any(get_origin(t) in (list, set, tuple, frozenset) for t in _members(info))


def _is_bytes(info: FieldInfo) -> bool:
    return any(t is bytes for t in _members(info))


def _optional(info: FieldInfo) -> bool:
    return not info.is_required() and info.default is None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE)
