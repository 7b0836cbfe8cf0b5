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
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError
from sqlalchemy import func, select
from typing_extensions import TypedDict

from agent.context import AgentContext
from agent.tools import action_name, error_text, registry_tools, result_text
from storage.exceptions import Igny8Error, ValidationFailed
from storage.models import Role, Sector, Site
from tools.accounts import slugify
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


async def _prepared_args(call: dict[str, Any], ctx: AgentContext) -> dict[str, Any]:
    """The call's arguments ready for ``invoke``: site/sector names resolved inside the tenant, the
    conversation's site/sector filled in when left out, local files read where the surface allows."""
    act = registry.get(action_name(call["name"]))
    args = dict(call.get("args") or {})
    fields = act.input_model.model_fields
    if "site_name" in args or "sector_name" in args:
        await _resolve_names(args, ctx)
    for name, value in (("site_id", ctx.site_id), ("sector_id", ctx.sector_id)):
        if value is not None and name in fields and args.get(name) is None:
            args[name] = value
    file_field = fields.get("file")
    if file_field is not None and file_field.annotation is bytes and not isinstance(args.get("file"), bytes):
        args["file"] = _file_content(args.get("file"), ctx)
    return args


async def _resolve_names(args: dict[str, Any], ctx: AgentContext) -> None:
    """``site_name``/``sector_name`` (from the offline interpreter) become ids the caller can see."""
    async with ctx.db.transaction(ctx.tenant) as session:
        if (site_name := args.pop("site_name", None)) is not None:
            site = await session.scalar(
                select(Site).where(
                    (func.lower(Site.name) == str(site_name).lower()) | (Site.slug == slugify(str(site_name)))
                )
            )
            if site is None:
                raise ValidationFailed.single("site", f"you have no site called {site_name!r}")
            args["site_id"] = site.id
        if (sector_name := args.pop("sector_name", None)) is not None:
            query = select(Sector).where(
                (func.lower(Sector.name) == str(sector_name).lower())
                | (Sector.slug == slugify(str(sector_name)))
            )
            if args.get("site_id") is not None:
                query = query.where(Sector.site_id == args["site_id"])
            sectors = (await session.scalars(query)).all()
            if len(sectors) != 1:
                problem = "no sector" if not sectors else "more than one sector"
                raise ValidationFailed.single("sector", f"{problem} called {sector_name!r}; say which site")
            args["sector_id"] = sectors[0].id
            args.setdefault("site_id", sectors[0].site_id)


def _file_content(name: Any, ctx: AgentContext) -> bytes:
    """An attachment by name — or the only one there is, whatever the model called it — else, where
    the surface allows it, a file on this machine."""
    attached = ctx.attachments
    if isinstance(name, str) and name in attached:
        return attached[name]
    if len(attached) == 1:
        return next(iter(attached.values()))
    if attached and not ctx.local_files:
        raise ValidationFailed.single("file", f"say which attachment: {', '.join(attached)}")
    if not isinstance(name, str) or not name:
        raise ValidationFailed.single("file", "is required: attach the file to your message")
    if not ctx.local_files:
        raise ValidationFailed.single("file", "attach the file to your message instead of naming a path")
    try:
        return Path(name).expanduser().read_bytes()
    except OSError as exc:
        raise ValidationFailed.single("file", f"cannot read {name}: {exc.strerror}") from None


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
        prepared: dict[str, dict[str, Any] | Igny8Error] = {}
        for call in calls:
            try:
                prepared[call["id"]] = await _prepared_args(call, ctx)
            except Igny8Error as exc:
                prepared[call["id"]] = exc
        decisions = {
            c["id"]: _normalise(interrupt(request))
            for c in calls
            if (request := _confirmation_request(c, prepared[c["id"]], ctx)) is not None
        }
        results = [await _run_call(c, prepared[c["id"]], decisions.get(c["id"]), ctx) for c in calls]
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
    if not isinstance(merged, AIMessageChunk):  # a model that does not stream answered whole
        return merged
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


def _confirmation_request(
    call: dict[str, Any], args: dict[str, Any] | Igny8Error, ctx: AgentContext
) -> dict[str, Any] | None:
    """What to ask the user, or None when the call may run without asking."""
    if isinstance(args, Igny8Error):
        return None
    try:
        act = registry.get(action_name(call["name"]))
        params = parse_input(act.input_model, args)
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


async def _run_call(
    call: dict[str, Any],
    args: dict[str, Any] | Igny8Error,
    decision: dict[str, Any] | None,
    ctx: AgentContext,
) -> ToolMessage:
    def reply(content: str, *, ok: bool = True) -> ToolMessage:
        return ToolMessage(
            content, tool_call_id=call["id"], name=call["name"], status="success" if ok else "error"
        )

    if decision is not None and decision["decision"] == "reject":
        return reply(
            json.dumps(
                {
                    "rejected": True,
                    "message": "The user said no; nothing was changed and nothing was charged.",
                }
            )
        )
    if isinstance(args, Igny8Error):
        return reply(error_text(args), ok=False)
    if decision is not None and decision["decision"] == "edit":
        args = {**args, **decision["arguments"]}
    try:
        result = await _invoke(action_name(call["name"]), args, ctx, confirmed=decision is not None)
    except Igny8Error as exc:
        return reply(error_text(exc), ok=False)
    except ValidationError as exc:
        return reply(json.dumps({"error": "validation_error", "message": str(exc)}), ok=False)
    return reply(result_text(result))


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
