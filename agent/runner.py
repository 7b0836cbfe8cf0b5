"""Conversations: one entry point every surface (CLI, HTTP, Slack) uses to talk to the agent.

Per thread it keeps one run at a time — a message arriving mid-run is queued and fed to the model at
its next step — resumes a run that crashed from its last checkpoint, answers pending confirmations,
and turns the graph's stream into plain events.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from agent.context import DEFAULT_CONFIRM_CREDITS_ABOVE, AgentContext
from agent.graph import build_graph
from agent.models import chat_model_for_account
from agent.tools import action_name
from storage.db import Database
from storage.tenancy import TenantContext

YES = {"yes", "y", "ok", "okay", "approve", "approved", "go", "go ahead", "do it", "sure", "confirm"}
NO = {"no", "n", "cancel", "stop", "reject", "don't", "dont", "nope", "abort"}
MAX_ATTACHMENTS = 3  # per conversation
ATTACHMENT_BUDGET = 256 * 1024 * 1024  # bytes of attachments held by one process, all conversations


@dataclass(frozen=True)
class AgentEvent:
    """``kind``: token, message, tool_call, tool_result, confirm, job, progress, queued, error."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Thread:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inbox: list[str] = field(default_factory=list)
    # True once this process saw the thread's last run end cleanly: no need to read its state first.
    settled: bool = False
    # Files attached to this conversation, newest last; held by this process, not checkpointed.
    attachments: dict[str, bytes] = field(default_factory=dict)

    def drain(self) -> list[str]:
        queued, self.inbox = self.inbox, []
        return queued

    def attach(self, files: Mapping[str, bytes]) -> list[str]:
        """Keep ``files`` (the latest few) under names a message can quote; returns those names."""
        names = []
        for raw, content in files.items():
            name = attachment_name(raw)
            self.attachments.pop(name, None)
            self.attachments[name] = content
            names.append(name)
        while len(self.attachments) > MAX_ATTACHMENTS:
            del self.attachments[next(iter(self.attachments))]
        return names


def attachment_name(raw: str) -> str:
    """A file name without folders or spaces, so the model (or the offline interpreter) can quote it
    back as one word."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "attachment"


def with_attachment_note(message: str, names: list[str]) -> str:
    return f"{message}\n\n[attached: {', '.join(names)}]" if names else message


class Conversations:
    def __init__(
        self,
        db: Database,
        checkpointer: BaseCheckpointSaver,
        model: BaseChatModel | None = None,
        *,
        attachment_budget: int = ATTACHMENT_BUDGET,
    ):
        self.db = db
        self.checkpointer = checkpointer
        self._model = model
        self._threads: defaultdict[str, _Thread] = defaultdict(_Thread)
        self._graphs: dict[tuple[int, str], Any] = {}
        self._attachment_budget = attachment_budget
        self._with_files: dict[str, _Thread] = {}  # threads holding files, least recently attached first

    def _attach(self, key: str, files: Mapping[str, bytes]) -> list[str]:
        """Keep a thread's new files; past the process-wide budget, the files of the conversations
        that attached longest ago are let go (a tool naming one then asks to attach it again)."""
        thread = self._threads[key]
        names = thread.attach(files)
        if names:
            self._with_files.pop(key, None)
            self._with_files[key] = thread
            held = sum(len(c) for t in self._with_files.values() for c in t.attachments.values())
            while held > self._attachment_budget and len(self._with_files) > 1:
                oldest = self._with_files.pop(next(iter(self._with_files)))
                held -= sum(len(c) for c in oldest.attachments.values())
                oldest.attachments.clear()
        return names

    def thread_key(self, tenant: TenantContext, conversation: str) -> str:
        """Every thread id starts with the caller's account: a client cannot name another's thread."""
        return f"{tenant.account_id}:{conversation}"

    async def _graph(self, tenant: TenantContext) -> Any:
        model = self._model
        if model is None:
            async with self.db.transaction(tenant) as session:
                model = await chat_model_for_account(session)
        key = (id(self._model) if self._model is not None else hash(repr(model)), tenant.role)
        if key not in self._graphs:
            self._graphs[key] = build_graph(model, role=tenant.role, checkpointer=self.checkpointer)
        return self._graphs[key]

    async def send(
        self,
        tenant: TenantContext,
        conversation: str,
        message: str,
        *,
        site_id: int | None = None,
        sector_id: int | None = None,
        confirm_credits_above: int = DEFAULT_CONFIRM_CREDITS_ABOVE,
        local_files: bool = False,
        attachments: Mapping[str, bytes] | None = None,
    ) -> AsyncIterator[AgentEvent]:
        key = self.thread_key(tenant, conversation)
        thread = self._threads[key]
        message = with_attachment_note(message, self._attach(key, attachments or {}))
        if thread.lock.locked():
            thread.inbox.append(message)
            yield AgentEvent("queued", {"message": "Got it — I'll take that into account in a moment."})
            return
        async with thread.lock:
            graph = await self._graph(tenant)
            ctx = AgentContext(
                tenant,
                self.db,
                key,
                site_id=site_id,
                sector_id=sector_id,
                confirm_credits_above=confirm_credits_above,
                inbox=thread.drain,
                local_files=local_files,
                attachments=dict(thread.attachments),
            )
            config = {"configurable": {"thread_id": key}}
            snapshot = None if thread.settled else await graph.aget_state(config)
            thread.settled = False
            if snapshot is None:
                stream_input: Any = {"messages": [HumanMessage(message)]}
            elif snapshot.interrupts:
                answer = _yes_no(message)
                if answer is None:
                    yield AgentEvent("confirm", snapshot.interrupts[0].value | {"reminder": True})
                    return
                stream_input = Command(resume=_answers(snapshot, answer))
            elif snapshot.tasks:  # a run died mid-way: finish it from its checkpoint, then take the message
                async for event in _events(graph, None, config, ctx):
                    yield event
                stream_input = {"messages": [HumanMessage(message)]}
            else:
                stream_input = {"messages": [HumanMessage(message)]}
            asked = False
            async for event in _events(graph, stream_input, config, ctx):
                asked = asked or event.kind == "confirm"
                yield event
            thread.settled = not asked

    async def resume(
        self, tenant: TenantContext, conversation: str, decision: dict[str, Any] | str, **context: Any
    ) -> AsyncIterator[AgentEvent]:
        """Answer the pending confirmation(s) with approve / edit (+arguments) / reject."""
        key = self.thread_key(tenant, conversation)
        thread = self._threads[key]
        async with thread.lock:
            graph = await self._graph(tenant)
            ctx = AgentContext(
                tenant, self.db, key, inbox=thread.drain, attachments=dict(thread.attachments), **context
            )
            config = {"configurable": {"thread_id": key}}
            snapshot = await graph.aget_state(config)
            if not snapshot.interrupts:
                yield AgentEvent("error", {"message": "There is nothing waiting for your confirmation."})
                return
            thread.settled, asked = False, False
            async for event in _events(graph, Command(resume=_answers(snapshot, decision)), config, ctx):
                asked = asked or event.kind == "confirm"
                yield event
            thread.settled = not asked

    async def history(self, tenant: TenantContext, conversation: str) -> list[dict[str, Any]]:
        graph = await self._graph(tenant)
        snapshot = await graph.aget_state(
            {"configurable": {"thread_id": self.thread_key(tenant, conversation)}}
        )
        return [_as_dict(m) for m in (snapshot.values or {}).get("messages", [])]


def _yes_no(text: str) -> str | None:
    words = text.strip().lower().strip(".! ")
    return "approve" if words in YES else "reject" if words in NO else None


def _answers(snapshot: Any, decision: dict[str, Any] | str) -> dict[str, Any]:
    """The same decision for every pending confirmation, keyed by interrupt id."""
    return {item.id: decision for item in snapshot.interrupts}


async def _events(
    graph: Any, stream_input: Any, config: dict[str, Any], ctx: AgentContext
) -> AsyncIterator[AgentEvent]:
    async for mode, chunk in graph.astream(
        stream_input, config, context=ctx, durability="sync", stream_mode=["messages", "updates", "custom"]
    ):
        if mode == "messages":
            message, _meta = chunk
            if isinstance(message, AIMessageChunk) and isinstance(message.content, str) and message.content:
                yield AgentEvent("token", {"text": message.content})
        elif mode == "custom":
            yield AgentEvent(chunk.get("type", "progress"), chunk)
        else:
            for event in _update_events(chunk):
                yield event


def _update_events(update: dict[str, Any]) -> list[AgentEvent]:
    events: list[AgentEvent] = []
    for node, value in update.items():
        if node == "__interrupt__":
            events += [AgentEvent("confirm", {**item.value, "interrupt_id": item.id}) for item in value]
            continue
        for message in (value or {}).get("messages", []) if isinstance(value, dict) else []:
            if isinstance(message, AIMessage):
                events += [
                    AgentEvent("tool_call", {"action": action_name(c["name"]), "arguments": c["args"]})
                    for c in message.tool_calls
                ]
                if message.content:
                    events.append(AgentEvent("message", {"text": message.text}))
            elif isinstance(message, ToolMessage):
                events.append(
                    AgentEvent(
                        "tool_result",
                        {
                            "action": action_name(message.name or ""),
                            "ok": message.status != "error",
                            "content": str(message.content),
                        },
                    )
                )
    return events


def _as_dict(message: Any) -> dict[str, Any]:
    role = {"human": "user", "ai": "assistant", "tool": "tool"}.get(message.type, message.type)
    out: dict[str, Any] = {
        "role": role,
        "content": message.text if hasattr(message, "text") else message.content,
    }
    if isinstance(message, AIMessage) and message.tool_calls:
        out["tool_calls"] = [
            {"action": action_name(c["name"]), "arguments": c["args"]} for c in message.tool_calls
        ]
    return out
