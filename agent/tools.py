"""The model's tools, derived one per registry action; running them goes through ``invoke``.

Tool names cannot contain dots, so ``keywords.list`` is offered as ``keywords__list``. The tool schema
is the action's pydantic input model; the tenant is not in it and cannot be.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel

from storage.exceptions import Igny8Error
from storage.models import Role
from tools.registry import Action, registry

SEPARATOR = "__"
MAX_RESULT_CHARS = 12_000


def tool_name(action_name: str) -> str:
    return action_name.replace(".", SEPARATOR)


def action_name(tool: str) -> str:
    return tool.replace(SEPARATOR, ".", 1)


def _describe(act: Action) -> str:
    flags = []
    if act.confirm:
        flags.append("asks the user to confirm before running")
    if act.long:
        flags.append("runs as a job with progress updates")
    cost = act.cost if isinstance(act.cost, int) else "varies"
    if cost:
        flags.append(f"costs credits ({cost})")
    return act.summary + (f" ({'; '.join(flags)})" if flags else "")


async def _never_called(**_: Any) -> str:
    raise RuntimeError("registry tools are executed by the graph's act node, not directly")


def registry_tools(role: Role | None = None) -> list[StructuredTool]:
    """One tool per action the caller's role may run; execution happens in the graph so
    confirmation and tenancy apply."""
    return [
        StructuredTool.from_function(
            coroutine=_never_called,
            name=tool_name(act.name),
            description=_describe(act),
            args_schema=act.input_model,
        )
        for act in registry
        if role is None or role in act.roles
    ]


def result_text(result: Any) -> str:
    """A tool result as compact JSON for the model, cut to a size that fits a context window."""
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    if isinstance(data, list):
        data = [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in data]
    text = json.dumps(data, default=str, separators=(",", ":"))
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + '…"(truncated: ask for a smaller page)"'
    return text


def error_text(exc: Igny8Error) -> str:
    return json.dumps(
        {"error": exc.code, "message": exc.message, "details": exc.details, "next": _next_step(exc)},
        default=str,
    )


def _next_step(exc: Igny8Error) -> str:
    return {
        "validation_error": "Fix the named fields and call the tool again, or ask the user for them.",
        "not_found": "Check the id (list the objects first) or ask the user which one they mean.",
        "permission_denied": "Tell the user their role cannot do this; an admin or owner can.",
        "insufficient_credits": "Tell the user the cost and their balance; they can add credits.",
        "plan_limit_exceeded": "Tell the user which plan limit was reached and how to upgrade.",
    }.get(exc.code, "Explain the problem to the user and suggest what to do next.")
