"""Chat models: any OpenAI-compatible server, or the offline interpreter when none is configured."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI
from sqlalchemy.ext.asyncio import AsyncSession

from agent.interpreter import interpret
from agent.replies import describe
from agent.tools import action_name, tool_name
from storage.settings import Settings
from tools.ai.providers.select import effective_settings, integration_configs, llm_configured


class TolerantChatOpenAI(ChatOpenAI):
    """ChatOpenAI for servers that implement the protocol partially (llama.cpp, some vLLM builds):
    assistant ``content`` is always a string, never null."""

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload


class OfflineChatModel(BaseChatModel):
    """The offline interpreter dressed as a chat model, so the same graph runs with no LLM: it turns
    a message into a tool call, and tool results into a short answer for people."""

    @property
    def _llm_type(self) -> str:
        return "igny8-offline"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.answer(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages)

    def answer(self, messages: list[BaseMessage]) -> AIMessage:
        results = _trailing_tool_results(messages)
        if results:
            return AIMessage(
                "\n\n".join(describe(action_name(m.name or ""), str(m.content)) for m in results)
            )
        last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        if last is None:
            return AIMessage(
                "Hi! Ask me about your keywords, clusters, ideas or credits — or type `/igny8 help`."
            )
        understood = interpret(str(last.content), defaults=_conversation_defaults())
        if understood.action is None or understood.missing:
            return AIMessage(understood.reply or "Could you say that differently?")
        call = {
            "name": tool_name(understood.action),
            "args": understood.args,
            "id": f"offline-{id(last)}",
            "type": "tool_call",
        }
        return AIMessage(understood.reply or "", tool_calls=[call])


def _trailing_tool_results(messages: list[BaseMessage]) -> list[ToolMessage]:
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.insert(0, message)
    return results


def _conversation_defaults() -> dict[str, Any]:
    """Site and sector of the conversation, from the graph's runtime context when running in it."""
    try:
        from langgraph.runtime import get_runtime

        ctx = get_runtime().context
    except (RuntimeError, LookupError, AttributeError):
        return {}
    return {k: v for k, v in (("site_id", ctx.site_id), ("sector_id", ctx.sector_id)) if v is not None}


def chat_model(settings: Settings) -> BaseChatModel:
    if not llm_configured(settings):
        return OfflineChatModel()
    return TolerantChatOpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key or "not-needed",
        model=settings.llm_model or "gpt-4o-mini",
        streaming=True,
        max_retries=settings.llm_max_retries,
        timeout=settings.llm_timeout_s,
        temperature=0.2,
    )


async def chat_model_for_account(session: AsyncSession) -> BaseChatModel:
    """The account's own model server when it configured one, else the process default."""
    return chat_model(effective_settings(await integration_configs(session)))
