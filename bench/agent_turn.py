"""Agent turn latency: our graph vs LangGraph's prebuilt ReAct agent, same tools, stub and checkpointer.

A local OpenAI-wire server answers instantly: a tool call (billing.balance) when the last message is
the user's, a short reply once the tool result is in. --conversations turns run concurrently, each on
its own thread, for each agent in turn; we print p50/p99 turn latency and the p99 ratio (target <= 1.5).

    python bench/agent_turn.py [--conversations 100] [--postgres-url postgresql://postgres@127.0.0.1/db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from langchain_core.tools import StructuredTool
from langgraph.prebuilt import create_react_agent

from agent.memory import open_checkpointer
from agent.models import TolerantChatOpenAI
from agent.runner import Conversations
from agent.tools import action_name, registry_tools, result_text, tool_name
from storage.db import Database
from storage.migrate import upgrade_async
from tools import load_actions
from tools.accounts import create_account, tenant_for_user_id
from tools.registry import invoke

TOOL = tool_name("billing.balance")


def _sse(chunks: list[dict[str, Any]]) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def completions(request: web.Request) -> web.StreamResponse:
    """Tool call first, then words; streamed like OpenAI (both agents stream)."""
    body = await request.json()
    if body["messages"][-1]["role"] == "tool":
        chunks = [
            _chunk({"role": "assistant", "content": "Your balance is shown above."}),
            _chunk({}, "stop"),
        ]
    else:
        call = {
            "index": 0,
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": TOOL, "arguments": "{}"},
        }
        chunks = [
            _chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
            _chunk({}, "tool_calls"),
        ]
    return web.Response(text=_sse(chunks), content_type="text/event-stream")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(turns: list[Any]) -> list[float]:
    async def one(turn: Any) -> float:
        started = time.perf_counter()
        await turn
        return time.perf_counter() - started

    return await asyncio.gather(*(one(t) for t in turns))


async def ours(chat: Conversations, tenant: Any, n: int) -> list[float]:
    async def turn(i: int) -> None:
        async for _ in chat.send(tenant, f"ours-{i}", "what is my balance?"):
            pass

    return await timed([turn(i) for i in range(n)])


async def react(agent: Any, n: int) -> list[float]:
    return await timed(
        [
            agent.ainvoke(
                {"messages": [("user", "what is my balance?")]},
                {"configurable": {"thread_id": f"react-{i}"}},
                durability="sync",
            )
            for i in range(n)
        ]
    )


async def main(args: argparse.Namespace) -> None:
    load_actions()
    url = args.postgres_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    await upgrade_async(url)
    db = Database(url)
    made = await create_account(
        db, name="Bench", email=f"bench-{uuid.uuid4().hex[:6]}@example.com", plan="scale"
    )
    tenant = await tenant_for_user_id(db, made.user_id)
    runner = web.AppRunner(web.Application())
    runner.app.router.add_post("/v1/chat/completions", completions)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    model = TolerantChatOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", model="bench", streaming=True, max_retries=0
    )

    def executable(tool: StructuredTool) -> StructuredTool:
        """The same tool the model sees in our agent, but runnable by the prebuilt ToolNode."""

        async def run(**args: Any) -> str:
            return result_text(await invoke(action_name(tool.name), args, db=db, tenant=tenant))

        return StructuredTool.from_function(
            coroutine=run, name=tool.name, description=tool.description, args_schema=tool.args_schema
        )

    same_tools = [executable(t) for t in registry_tools(tenant.role)]
    try:
        async with open_checkpointer(url) as saver:
            chat = Conversations(db, saver, model)
            baseline = create_react_agent(model, same_tools, checkpointer=saver)
            await ours(chat, tenant, 2), await react(baseline, 2)  # warm up both
            results = {
                "ours": await ours(chat, tenant, args.conversations),
                "prebuilt ReAct": await react(baseline, args.conversations),
            }
    finally:
        await runner.cleanup()
        await db.dispose()
    backend = "postgresql" if args.postgres_url else "sqlite"
    print(
        f"{args.conversations} concurrent conversations, one tool call + one reply each, "
        f"{len(same_tools)} tools, {backend} checkpointer"
    )
    for name, values in results.items():
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        print(
            f"{name:>15}: p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   "
            f"mean {statistics.mean(values) * 1000:7.1f} ms"
        )
    ratio = percentile(results["ours"], 0.99) / percentile(results["prebuilt ReAct"], 0.99)
    print(f"p99 ratio ours / prebuilt: {ratio:.2f} (target <= 1.5) {'OK' if ratio <= 1.5 else 'OVER'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--postgres-url", default=None)
    asyncio.run(main(parser.parse_args()))
