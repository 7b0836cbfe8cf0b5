"""CLI subcommands generated from the action registry: ``igny8 <group> <verb> --option …``.

Each pydantic input field becomes an option; ``bytes`` fields take a file path; lists accept the
option several times or comma-separated values; anything richer takes JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import types
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bots.cli.render import console, print_error, print_json, print_result
from storage.db import get_database
from storage.exceptions import ConfirmationRequired, Igny8Error, ValidationFailed
from storage.settings import get_settings
from tools.accounts import authenticate_api_key
from tools.registry import Action, ProgressEvent, invoke, registry

API_KEY_HELP = "API key (or set IGNY8_API_KEY, e.g. in .env)"
CLI_OPTIONS = frozenset({"api_key", "as_json", "yes"})


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _parameter(name: str, info: FieldInfo) -> inspect.Parameter:
    """One typer option for one input field; lists and JSON stay strings and are parsed later."""
    annotation = _unwrap_optional(info.annotation)
    help_text = info.description or ""
    if annotation is bytes:
        kind: Any = Path
        help_text += " (path to a file)"
    elif isinstance(annotation, type) and issubclass(annotation, Enum | bool | int | float | str):
        kind = annotation
    elif get_origin(annotation) is list:
        kind = list[str]
        help_text += " (repeat or comma-separate)"
    else:
        kind = str
        if _takes_json(annotation):
            help_text += " (JSON)"
        elif get_origin(annotation) is Literal:
            help_text += f" (one of: {', '.join(map(str, get_args(annotation)))})"
    default: Any = ... if info.is_required() else None
    if not info.is_required() and not callable(info.default) and get_origin(annotation) is not list:
        default = info.default
    file_checks = {"exists": True, "dir_okay": False} if annotation is bytes else {}
    option = typer.Option(
        "--" + name.replace("_", "-"), help=help_text, show_default=default not in (..., None), **file_checks
    )
    required_or_optional = kind if info.is_required() else kind | None
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[required_or_optional, option],
    )


def _coerce(act: Action, values: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, info in act.input_model.model_fields.items():
        value = values.get(name)
        annotation = _unwrap_optional(info.annotation)
        if value is None or value == ():
            continue
        if annotation is bytes:
            value = Path(value).read_bytes()
        elif get_origin(annotation) is list:
            value = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        elif _takes_json(annotation) and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValidationFailed.single(name, f"is not valid JSON ({exc.msg})") from None
        args[name] = value
    return args


def _takes_json(annotation: Any) -> bool:
    """Objects (dicts, nested models) are given as JSON; text, numbers, dates and choices are not."""
    origin = get_origin(annotation) or annotation
    return origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel))


async def run_action(
    act: Action, args: dict[str, Any], *, api_key: str | None, yes: bool, as_json: bool
) -> None:
    """Authenticate, run, and render; asks before confirm-actions unless ``--yes``."""
    db = get_database()
    try:
        tenant = await authenticate_api_key(db, api_key)
        try:
            result = await _invoke_with_progress(act, args, db=db, tenant=tenant, confirmed=yes)
        except ConfirmationRequired as needed:
            if not _ask(needed):
                console.print("Cancelled — nothing was changed.")
                return
            result = await _invoke_with_progress(act, args, db=db, tenant=tenant, confirmed=True)
        if act.streams:
            return
        print_json(result) if as_json else print_result(result)
    finally:
        await db.dispose()


def _ask(needed: ConfirmationRequired) -> bool:
    request = needed.request
    if not sys.stdin.isatty():
        raise ConfirmationRequired(request)
    console.print(f"[bold yellow]{request.action}[/bold yellow]: {request.summary}")
    console.print(f"  arguments: {json.dumps(request.arguments)}")
    return typer.confirm("Go ahead?", default=False)


async def _invoke_with_progress(act: Action, args: dict[str, Any], **kw: Any) -> Any:
    chunks = _stdout_chunk if act.streams else None
    if not console.is_terminal:
        return await invoke(act.name, args, chunks=chunks, **kw)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(act.name, total=None)

        async def progress(event: ProgressEvent) -> None:
            bar.update(
                task, description=f"{act.name}: {event.phase}", completed=event.done, total=event.total
            )

        return await invoke(act.name, args, progress=progress, chunks=chunks, **kw)


async def _stdout_chunk(chunk: str) -> None:
    sys.stdout.write(chunk)


def run_sync(coro_factory: Callable[[], Any]) -> None:
    """Run a coroutine, turning our domain errors into a clean message and exit code 1."""
    try:
        asyncio.run(coro_factory())
    except Igny8Error as exc:
        if isinstance(exc, ConfirmationRequired):
            exc.message += " — rerun with --yes to confirm"
        print_error(exc)
        raise SystemExit(1) from None


def action_command(app: typer.Typer, act: Action) -> None:
    """Register ``act`` on ``app`` as a typer command whose options mirror its input model."""
    verb = act.name.split(".", 1)[1].replace("_", "-")
    if clash := CLI_OPTIONS & act.input_model.model_fields.keys():
        raise TypeError(f"{act.name}: input field(s) {sorted(clash)} clash with the CLI's own options")
    params = [_parameter(name, info) for name, info in act.input_model.model_fields.items()]
    params += [
        inspect.Parameter(
            "api_key",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[str | None, typer.Option(envvar="IGNY8_API_KEY", help=API_KEY_HELP)],
        ),
        inspect.Parameter(
            "as_json",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[bool, typer.Option("--json", help="Print the result as JSON")],
        ),
    ]
    if act.confirm:
        params.append(
            inspect.Parameter(
                "yes",
                inspect.Parameter.KEYWORD_ONLY,
                default=False,
                annotation=Annotated[bool, typer.Option("--yes", "-y", help="Skip the confirmation prompt")],
            )
        )

    def command(*, api_key: str | None, as_json: bool, yes: bool = False, **values: Any) -> None:
        key = api_key or settings_api_key()
        run_sync(lambda: run_action(act, _coerce(act, values), api_key=key, yes=yes, as_json=as_json))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    flags = [" (asks first)" if act.confirm else "", " (long-running)" if act.long else ""]
    app.command(verb, help=act.summary + "".join(flags))(command)


def settings_api_key() -> str | None:
    key = get_settings().api_key
    return key.get_secret_value() if key else None


def add_action_groups(app: typer.Typer, existing: dict[str, typer.Typer]) -> None:
    """One sub-command group per action prefix (``keywords``, ``clusters``, …)."""
    for act in registry:
        group_name = act.name.split(".", 1)[0].replace("_", "-")
        if group_name not in existing:
            existing[group_name] = typer.Typer(
                help=f"{act.module.title()}: {group_name.replace('-', ' ')}", no_args_is_help=True
            )
            app.add_typer(existing[group_name], name=group_name)
        action_command(existing[group_name], act)
