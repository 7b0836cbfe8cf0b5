"""The agent graph end to end against a local OpenAI-wire server: tools per action, tenancy from the
runtime context, confirmations, memory across turns and restarts, queued messages, crash resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from agent.memory import open_checkpointer
from agent.models import TolerantChatOpenAI
from agent.runner import AgentEvent, Conversations
from tests.stubs.openai_stub import text_reply, tool_call_reply
from tests.stubs.scripted import Reply


@pytest.fixture
async def checkpointer(db) -> AsyncIterator[object]:
    async with open_checkpointer(db.url) as saver:
        yield saver


def model_for(stub) -> TolerantChatOpenAI:
    return TolerantChatOpenAI(
        base_url=stub.base_url, api_key=stub.api_key, model=stub.model, max_retries=0, streaming=True
    )


async def collect(stream) -> list[AgentEvent]:
    return [event async for event in stream]


def kinds(events: list[AgentEvent], kind: str) -> list[dict]:
    return [e.data for e in events if e.kind == kind]


async def test_tool_call_runs_for_the_caller_only(db, tenants, checkpointer, openai_stub):
    mine, theirs = await tenants.create(), await tenants.create()
    await mine.keywords("red shoes")
    [their_kw] = await theirs.keywords("secret keyword")
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(
        tool_call_reply(
            ("keywords__list", {}),
            ("keywords__get", {"id": their_kw}),
            ("keywords__list", {"account_id": theirs.account_id}),
        ),
        text_reply("You have one keyword: red shoes."),
    )
    events = await collect(chat.send(mine.owner, "c1", "what keywords do I have?"))
    listed, other, forged = kinds(events, "tool_result")
    assert "red shoes" in listed["content"] and "secret" not in json.dumps([e.data for e in events])
    assert not other["ok"] and "not_found" in other["content"]
    assert not forged["ok"] and "account_id" in forged["content"] and "not an argument" in forged["content"]
    assert kinds(events, "message")[-1]["text"] == "You have one keyword: red shoes."
    tools = openai_stub.chat_requests()[0].json["tools"]
    assert {"keywords__list", "keywords__import_csv", "tasks__auto_generate_content"} <= {
        t["function"]["name"] for t in tools
    }
    assert all("account_id" not in json.dumps(t["function"]["parameters"]) for t in tools)


@pytest.mark.parametrize("decision", ["reject", "approve", "edit"])
async def test_bulk_delete_asks_first(db, tenants, checkpointer, openai_stub, decision):
    t = await tenants.create()
    a, b = await t.keywords("a", "b")
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(tool_call_reply(("keywords__bulk_delete", {"ids": [a, b]})), text_reply("Done."))
    events = await collect(chat.send(t.owner, "c", "delete both keywords"))
    [ask] = kinds(events, "confirm")
    assert ask["action"] == "keywords.bulk_delete" and ask["arguments"] == {"ids": [a, b]}
    assert ask["allowed"] == ["approve", "edit", "reject"]
    assert (await t.run("keywords.list")).count == 2  # nothing happens before the answer

    answer = {"decision": decision, "arguments": {"ids": [a]}} if decision == "edit" else decision
    after = await collect(chat.resume(t.owner, "c", answer))
    remaining = {k.keyword for k in (await t.run("keywords.list")).results}
    assert remaining == {"reject": {"a", "b"}, "approve": set(), "edit": {"b"}}[decision]
    [result] = kinds(after, "tool_result")
    assert ("rejected" in result["content"]) == (decision == "reject")
    assert kinds(after, "message")[-1]["text"] == "Done."


async def test_plain_yes_answers_a_pending_confirmation(db, tenants, checkpointer, openai_stub):
    t = await tenants.create()
    [a] = await t.keywords("a")
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(tool_call_reply(("keywords__bulk_delete", {"ids": [a]})), text_reply("Deleted."))
    await collect(chat.send(t.owner, "c", "delete it"))
    reminder = await collect(chat.send(t.owner, "c", "what was that?"))
    assert kinds(reminder, "confirm")[0]["reminder"] is True
    await collect(chat.send(t.owner, "c", "yes"))
    assert (await t.run("keywords.list")).count == 0


async def test_spending_above_the_threshold_asks_first(db, tenants, checkpointer, openai_stub):
    t = await tenants.create(credits=1000)
    task = await t.run("tasks.create", site_id=t.site_id, sector_id=t.sector_id, title="x")
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(
        tool_call_reply(("tasks__auto_generate_content", {"task_ids": [task.id]})), text_reply("ok")
    )
    events = await collect(chat.send(t.owner, "c", "write it", confirm_credits_above=5))
    [ask] = kinds(events, "confirm")
    assert ask["estimated_credits"] == 12 and "credits" in ask["summary"]
    await collect(chat.resume(t.owner, "c", "reject"))
    assert (await t.run("billing.balance")).credits == 1000


async def test_memory_survives_a_restart(db, tenants, openai_stub):
    t = await tenants.create()
    async with open_checkpointer(db.url) as saver:
        openai_stub.chat(text_reply("Nice to meet you, Ana."))
        await collect(Conversations(db, saver, model_for(openai_stub)).send(t.owner, "mem", "I am Ana"))
    async with open_checkpointer(db.url) as saver:  # a new process: new connection, same store
        chat = Conversations(db, saver, model_for(openai_stub))
        openai_stub.chat(text_reply("You are Ana."))
        await collect(chat.send(t.owner, "mem", "who am I?"))
        history = await chat.history(t.owner, "mem")
    assert [m["content"] for m in history] == [
        "I am Ana",
        "Nice to meet you, Ana.",
        "who am I?",
        "You are Ana.",
    ]
    sent = [m["content"] for m in openai_stub.chat_requests()[-1].json["messages"]]
    assert "I am Ana" in sent


async def test_threads_are_namespaced_by_account(db, tenants, checkpointer, openai_stub):
    a, b = await tenants.create(), await tenants.create()
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(text_reply("noted"))
    await collect(chat.send(a.owner, "shared-name", "my secret is 42"))
    assert await chat.history(b.owner, "shared-name") == []


async def test_message_during_a_run_is_queued_for_the_next_step(db, tenants, checkpointer, openai_stub):
    t = await tenants.create()
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(
        Reply(
            content=None,
            tool_calls=tool_call_reply(("billing__balance", {})).tool_calls,
            finish_reason="tool_calls",
            delay_s=0.5,
        ),
        text_reply("Balance shown."),
    )
    first = asyncio.create_task(collect(chat.send(t.owner, "q", "balance?")))
    await asyncio.sleep(0.1)
    queued = await collect(chat.send(t.owner, "q", "and in euros please"))
    assert [e.kind for e in queued] == ["queued"]
    await first
    second_request = [m["content"] for m in openai_stub.chat_requests()[1].json["messages"]]
    assert "and in euros please" in second_request


async def test_a_crashed_run_resumes_from_its_checkpoint(db, tenants, checkpointer, openai_stub):
    t = await tenants.create()
    [a] = await t.keywords("a")
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(tool_call_reply(("keywords__get", {"id": a})))
    stream = chat.send(t.owner, "crash", "show keyword a")
    async for event in stream:
        if event.kind == "tool_call":
            break  # the process dies after the model step was checkpointed, before the tool ran
    await stream.aclose()
    openai_stub.chat(text_reply("Keyword a is pending."), text_reply("Anything else?"))
    events = await collect(chat.send(t.owner, "crash", "hello?"))
    assert kinds(events, "tool_result")[0]["ok"]
    assert [m["text"] for m in kinds(events, "message")] == ["Keyword a is pending.", "Anything else?"]


async def test_invalid_tool_arguments_are_sent_back(db, tenants, checkpointer, openai_stub):
    t = await tenants.create()
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    bad = [
        {"id": "call_bad", "type": "function", "function": {"name": "keywords__list", "arguments": "{oops"}}
    ]
    openai_stub.chat(
        Reply(content=None, tool_calls=bad, finish_reason="tool_calls"), text_reply("Sorry, fixed.")
    )
    events = await collect(chat.send(t.owner, "bad", "list"))
    assert kinds(events, "message")[-1]["text"] == "Sorry, fixed."
    retry = openai_stub.chat_requests()[1].json["messages"]
    assert retry[-1]["role"] == "tool" and "could not be read" in retry[-1]["content"]
    assert retry[-2]["tool_calls"][0]["id"] == retry[-1]["tool_call_id"] == "call_bad"
    assert all(isinstance(m.get("content"), str) for m in retry)


async def test_postgres_memory_survives_dropped_connections(db, tenants, checkpointer, openai_stub):
    if db.backend != "postgresql":
        pytest.skip("only PostgreSQL pools connections that a server restart can drop")
    import psycopg
    from sqlalchemy.engine import make_url

    t = await tenants.create()
    chat = Conversations(db, checkpointer, model_for(openai_stub))
    openai_stub.chat(text_reply("first"), text_reply("second"))
    await collect(chat.send(t.owner, "stale", "one"))
    conninfo = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    events = await collect(chat.send(t.owner, "stale", "two"))
    assert kinds(events, "message")[-1]["text"] == "second"
    assert [m["content"] for m in await chat.history(t.owner, "stale")] == ["one", "first", "two", "second"]
