"""The agent graph: model → act → model, until the model answers in words.

* ``model`` calls the chat model (an OpenAI-compatible server, or the offline interpreter) with one
  tool per registry action, after draining messages that arrived mid-run.
* ``act`` first pauses with ``interrupt()`` for every pending call that needs a yes (declared
  ``confirm``, or spending above the account's threshold) — only reads happen before the last
  question, so re-running the node on resume is harmless — then runs the calls through
  ``tools.registry.invoke`` for the tenant in the runtime context. Rejected calls change nothing and
  cost nothing; long actions stream job progress.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError
from typing_extensions import TypedDict

from agent.context import AgentContext
from agent.tools import action_name, error_text, registry_tools, result_text
from storage.exceptions import Igny8Error
from storage.models import Role
from tools.registry import ProgressEvent, check_role, invoke, parse_input, registry

MAX_BAD_TOOL_CALLS = 2
DECISIONS = ("approve", "edit", "reject")
SYSTEM_PROMPT = (
    "You are IGNY8, an SEO content assistant. You act only through the tools, for the signed-in "
    "account. Prefer listing before guessing ids; ask the user when something required is missing. "
    "Keep answers short; use tables for lists."
)


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    bad_tool_calls: int


def _pending_calls(state: AgentState) -> list[dict[str, Any]]:
    last = state["messages"][-1] if state.get("messages") else None
    return list(last.tool_calls) if isinstance(last, AIMessage) else []


def _with_defaults(call: dict[str, Any], ctx: AgentContext) -> dict[str, Any]:
    """Fill site/sector from the conversation when the action takes them and the model left them out."""
    act = registry.get(action_name(call["name"]))
    args = dict(call.get("args") or {})
    for field, value in (("site_id", ctx.site_id), ("sector_id", ctx.sector_id)):
        if value is not None and field in act.input_model.model_fields and args.get(field) is None:
            args[field] = value
    return args


def build_graph(model: BaseChatModel, *, role: Role | None = None, checkpointer: Any = None) -> Any:
    bound = model.bind_tools(registry_tools(role)) if model_supports_tools(model) else model

    async def call_model(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        queued = [HumanMessage(text) for text in runtime.context.inbox()]
        history = [*state["messages"], *queued]
        reply = await _complete(bound, [("system", SYSTEM_PROMPT), *history])
        update: dict[str, Any] = {"messages": [*queued, reply]}
        if reply.invalid_tool_calls and not reply.tool_calls:
            strikes = state.get("bad_tool_calls", 0) + 1
            return {
                **update,
                "messages": [*update["messages"], *_unreadable(reply)],
                "bad_tool_calls": strikes,
            }
        return {**update, "bad_tool_calls": 0}

    async def act(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx, calls = runtime.context, _pending_calls(state)
        # Every question is asked before anything runs: on resume this node starts again from the
        # top, and only the (read-only) questions repeat, answered from the resume values.
        decisions = {
            c["id"]: _normalise(interrupt(request))
            for c in calls
            if (request := _confirmation_request(c, ctx)) is not None
        }
        results = [await _run_call(call, decisions.get(call["id"]), ctx) for call in calls]
        return {"messages": [*results, *_unreadable(state["messages"][-1])]}

    graph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("model", call_model)
    graph.add_node("act", act)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", _after_model, {"act": "act", "model": "model", END: END})
    graph.add_edge("act", "model")
    return graph.compile(checkpointer=checkpointer)


async def _complete(model: Any, messages: list[Any]) -> AIMessage:
    """Stream the reply (so surfaces get tokens) and keep every tool call whose arguments are not
    valid JSON as invalid: streamed chunks would otherwise be parsed leniently into ``{}``."""
    merged: AIMessageChunk | None = None
    async for chunk in model.astream(messages):
        merged = chunk if merged is None else merged + chunk
    if merged is None:
        return AIMessage("")
    valid, invalid = [], list(merged.invalid_tool_calls)
    for raw, parsed in zip(merged.tool_call_chunks, merged.tool_calls, strict=False):
        try:
            json.loads(raw.get("args") or "{}")
            valid.append(parsed)
        except json.JSONDecodeError as exc:
            invalid.append(
                {
                    "type": "invalid_tool_call",
                    "id": parsed["id"],
                    "name": parsed["name"],
                    "args": raw.get("args"),
                    "error": f"arguments are not valid JSON ({exc.msg})",
                }
            )
    return AIMessage(
        content=merged.content,
        id=merged.id,
        tool_calls=valid,
        invalid_tool_calls=invalid,
        response_metadata=merged.response_metadata,
        usage_metadata=merged.usage_metadata,
    )


def model_supports_tools(model: BaseChatModel) -> bool:
    return type(model).bind_tools is not BaseChatModel.bind_tools


def _after_model(state: AgentState) -> Literal["act", "model", "__end__"]:
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "act"
    if isinstance(last, ToolMessage) and 0 < state.get("bad_tool_calls", 0) <= MAX_BAD_TOOL_CALLS:
        return "model"
    return END


def _unreadable(reply: AnyMessage) -> list[ToolMessage]:
    """Answer every call whose arguments were not valid JSON, so the model can send it again (and the
    protocol's rule that each tool call gets a reply holds)."""
    return [
        ToolMessage(
            json.dumps(
                {
                    "error": "invalid_arguments",
                    "message": f"Your call could not be read: "
                    f"{c.get('error') or 'arguments are not valid JSON'}. Send it again with valid "
                    "JSON arguments, or answer in words.",
                }
            ),
            tool_call_id=c.get("id") or "unknown",
            name=c.get("name") or "unknown",
            status="error",
        )
        for c in getattr(reply, "invalid_tool_calls", [])
    ]


def _confirmation_request(call: dict[str, Any], ctx: AgentContext) -> dict[str, Any] | None:
    """What to ask the user, or None when the call may run without asking."""
    try:
        act = registry.get(action_name(call["name"]))
        params = parse_input(act.input_model, _with_defaults(call, ctx))
    except Igny8Error:
        return None  # invalid calls fail in act with a message the model can act on
    credits = act.credits_for(params)
    if not act.confirm and credits <= ctx.confirm_credits_above:
        return None
    reason = act.summary if act.confirm else f"this will spend about {credits} credits"
    return {
        "type": "confirmation",
        "tool_call_id": call["id"],
        "action": act.name,
        "arguments": params.model_dump(mode="json", exclude_defaults=True),
        "estimated_credits": credits,
        "summary": reason,
        "allowed": list(DECISIONS),
    }


def _normalise(answer: Any) -> dict[str, Any]:
    if isinstance(answer, str):
        answer = {"decision": answer}
    decision = str(answer.get("decision", "reject")).lower() if isinstance(answer, dict) else "reject"
    if decision not in DECISIONS:
        decision = "reject"
    return {"decision": decision, "arguments": dict(answer.get("arguments") or {})}


async def _run_call(call: dict[str, Any], decision: dict[str, Any] | None, ctx: AgentContext) -> ToolMessage:
    name = action_name(call["name"])
    if decision is not None and decision["decision"] == "reject":
        return ToolMessage(
            json.dumps(
                {
                    "rejected": True,
                    "message": "The user said no; nothing was changed and nothing was charged.",
                }
            ),
            tool_call_id=call["id"],
            name=call["name"],
        )
    args = _with_defaults(call, ctx)
    if decision is not None and decision["decision"] == "edit":
        args.update(decision["arguments"])
    try:
        result = await _invoke(name, args, ctx, confirmed=decision is not None)
    except Igny8Error as exc:
        return ToolMessage(error_text(exc), tool_call_id=call["id"], name=call["name"], status="error")
    except ValidationError as exc:
        return ToolMessage(
            json.dumps({"error": "validation_error", "message": str(exc)}),
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
        )
    return ToolMessage(result_text(result), tool_call_id=call["id"], name=call["name"])


async def _invoke(name: str, args: dict[str, Any], ctx: AgentContext, *, confirmed: bool) -> Any:
    """Run one action; long ones are a job: start → job reference → progress events → result."""
    act = registry.get(name)
    check_role(act, ctx.tenant)
    if not act.long:
        return await invoke(name, args, db=ctx.db, tenant=ctx.tenant, confirmed=confirmed)
    write = get_stream_writer()
    job_id = uuid.uuid4().hex[:12]
    write({"type": "job", "job_id": job_id, "action": name, "status": "started"})

    async def progress(event: ProgressEvent) -> None:
        write(
            {
                "type": "progress",
                "job_id": job_id,
                "action": name,
                "phase": event.phase,
                "done": event.done,
                "total": event.total,
                "message": event.message,
            }
        )

    try:
        result = await invoke(
            name, args, db=ctx.db, tenant=ctx.tenant, confirmed=confirmed, progress=progress
        )
    except Igny8Error as exc:
        write({"type": "job", "job_id": job_id, "action": name, "status": "failed", "message": exc.message})
        raise
    write({"type": "job", "job_id": job_id, "action": name, "status": "done"})
    return result
