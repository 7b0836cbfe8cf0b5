"""The action registry: one declaration per action, from which every surface is derived.

An action is a typed async function ``async def f(ctx: ActionContext, params: SomeInput) -> Out``
plus a declaration (name, module, summary, roles, credit cost, ``long``, ``confirm``, REST route).
The LLM tool schema, slash-command grammar, REST route, OpenAPI entry and CLI subcommand all read
the declaration; none re-implements the action.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.exceptions import (
    ConfirmationRequest,
    ConfirmationRequired,
    FieldError,
    PermissionDenied,
    ValidationFailed,
)
from storage.models import Role
from storage.tenancy import TenantContext
from tools import telemetry

ALL_ROLES = frozenset(Role)
WRITE_ROLES = ALL_ROLES - {Role.VIEWER}
ADMIN_ROLES = frozenset({Role.DEVELOPER, Role.OWNER, Role.ADMIN, Role.SYSTEM_BOT})

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ProgressSink = Callable[["ProgressEvent"], Awaitable[None]]
ChunkSink = Callable[[str], Awaitable[None]]


class ActionInput(BaseModel):
    """Base for action inputs: unknown arguments are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NoInput(ActionInput):
    """For actions that take no arguments."""


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    action: str
    phase: str
    done: int = 0
    total: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """REST placement under ``/api/v1/``; ``{name}`` segments are filled from input fields."""

    method: HttpMethod
    path: str


@dataclass
class ActionContext:
    """What a running action may use; the tenant is fixed by whoever authenticated the caller."""

    action: str
    tenant: TenantContext
    session: AsyncSession
    db: Database
    progress_sink: ProgressSink | None = None
    chunk_sink: ChunkSink | None = None

    async def progress(self, phase: str, done: int = 0, total: int | None = None, message: str = "") -> None:
        if self.progress_sink is not None:
            await self.progress_sink(ProgressEvent(self.action, phase, done, total, message))


Handler = Callable[[ActionContext, Any], Awaitable[Any]]
CostFn = Callable[[Any], int]


@dataclass(frozen=True)
class Action:
    name: str
    module: str
    summary: str
    input_model: type[ActionInput]
    handler: Handler
    roles: frozenset[Role] = WRITE_ROLES
    cost: int | CostFn = 0
    long: bool = False
    confirm: bool = False
    route: Route | None = None
    streams: str | None = None

    def credits_for(self, params: ActionInput) -> int:
        return self.cost(params) if callable(self.cost) else self.cost

    @property
    def read_only(self) -> bool:
        return Role.VIEWER in self.roles


class Registry:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(self, action: Action) -> Action:
        if action.name in self._actions:
            raise ValueError(f"action {action.name!r} is declared twice")
        self._actions[action.name] = action
        return action

    def get(self, name: str) -> Action:
        try:
            return self._actions[name]
        except KeyError:
            raise ValidationFailed.single(
                "action", f"unknown action {name!r}; try one of: {', '.join(self.names()[:12])}…"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._actions)

    def __iter__(self) -> Iterator[Action]:
        return iter(sorted(self._actions.values(), key=lambda a: a.name))

    def __contains__(self, name: object) -> bool:
        return name in self._actions


registry = Registry()


def action(
    name: str,
    *,
    module: str,
    summary: str,
    roles: frozenset[Role] = WRITE_ROLES,
    cost: int | CostFn = 0,
    long: bool = False,
    confirm: bool = False,
    route: Route | None = None,
    streams: str | None = None,
) -> Callable[[Handler], Handler]:
    """Declare ``handler`` as an action; its second parameter's annotation is the input model.

    ``streams`` names the media type of output the action can write to a chunk sink (CSV export).
    """

    def decorate(handler: Handler) -> Handler:
        hints = get_type_hints(handler)
        params = list(inspect.signature(handler).parameters)
        input_model = hints.get(params[1]) if len(params) == 2 else None
        if not (isinstance(input_model, type) and issubclass(input_model, ActionInput)):
            raise TypeError(f"{handler.__qualname__}: second parameter must be an ActionInput model")
        registry.register(
            Action(name, module, summary, input_model, handler, roles, cost, long, confirm, route, streams)
        )
        return handler

    return decorate


def parse_input(model: type[ActionInput], args: Mapping[str, Any]) -> ActionInput:
    """Validate raw arguments, naming every offending field in the error."""
    try:
        params = model.model_validate(dict(args))
    except ValidationError as exc:
        raise ValidationFailed(
            [
                FieldError(".".join(str(p) for p in err["loc"]) or "input", _friendly(err))
                for err in exc.errors()
            ]
        ) from None
    if problems := list(_unstorable(params.model_dump(), "")):
        raise ValidationFailed(problems)
    return params


_INT64 = 2**63


def _unstorable(value: Any, path: str) -> Iterator[FieldError]:
    """Values no database column can take (a driver error otherwise): integers beyond 64 bits and
    text containing NUL, which PostgreSQL refuses."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        yield FieldError(path or "input", "is too large")
    elif isinstance(value, str) and "\x00" in value:
        yield FieldError(path or "input", "contains a NUL character")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _unstorable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{path}.{index}")


def _friendly(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "is not an argument of this action"
    if err["type"] == "missing":
        return "is required"
    return str(err["msg"])


def check_role(act: Action, tenant: TenantContext) -> None:
    if tenant.role not in act.roles:
        verb = "change anything" if tenant.read_only else f"run {act.name}"
        raise PermissionDenied(f"Your role ({tenant.role}) cannot {verb}.")


async def invoke(
    name: str,
    args: Mapping[str, Any],
    *,
    db: Database,
    tenant: TenantContext,
    confirmed: bool = False,
    progress: ProgressSink | None = None,
    chunks: ChunkSink | None = None,
) -> Any:
    """Run one action for one tenant in one transaction: validate, authorise, confirm, execute."""
    act = registry.get(name)
    params = parse_input(act.input_model, args)
    check_role(act, tenant)
    if act.confirm and not confirmed:
        raise ConfirmationRequired(
            ConfirmationRequest(
                action=act.name,
                arguments=params.model_dump(mode="json", exclude_defaults=True),
                summary=act.summary,
                estimated_credits=act.credits_for(params),
            )
        )
    if act.long:
        # Long actions call models between database steps; they commit each step themselves
        # (``ctx.session.begin()``) so no transaction stays open across a network call.
        with telemetry.job(act.name):
            async with db.session(tenant) as session:
                ctx = ActionContext(act.name, tenant, session, db, progress, chunks)
                return await act.handler(ctx, params)
    async with db.transaction(tenant, read_only=act.read_only) as session:
        return await act.handler(ActionContext(act.name, tenant, session, db, progress, chunks), params)
