"""Chat over HTTP with the offline model: SSE turns, confirmations answered by a second request,
history per tenant, input errors as envelopes, and the OpenAI façade driven by the official client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from openai import AsyncOpenAI

from agent.memory import open_checkpointer
from agent.models import OfflineChatModel, TolerantChatOpenAI
from agent.runner import AgentEvent, Conversations
from bots.http import sse
from tests.http_chat_support import SseEvent, auth, parse_sse, serve
from tests.stubs.openai_stub import text_reply, tool_call_reply


@pytest.fixture
async def client(db) -> AsyncIterator[TestClient]:
    async with open_checkpointer(db.url) as saver:
        client = await serve(db, Conversations(db, saver, OfflineChatModel()))
        try:
            yield client
        finally:
            await client.close()


async def turn(client: TestClient, key: str, path: str = "/api/v1/chat", **body) -> list[SseEvent]:
    response = await client.post(path, json=body, headers=auth(key))
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return parse_sse(await response.text())


def of(events: list[SseEvent], kind: str) -> list:
    return [e.data for e in events if e.event == kind]


def text_of(events: list[SseEvent]) -> str:
    return "\n".join(d["text"] for d in of(events, "message"))


def openai_client(client: TestClient, key: str, **kw) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=0, **kw)


# --- /api/v1/chat ------------------------------------------------------------------------------------


async def test_a_turn_streams_the_agents_events_between_start_and_done(client, tenants):
    t = await tenants.create()
    await t.keywords("best running shoes", "trail running shoes")
    events = await turn(
        client, t.api_key, message="show my keywords", site_id=t.site_id, sector_id=t.sector_id
    )

    assert events[0].event == "start" and events[-1].event == "done"
    conversation_id = events[-1].data["conversation_id"]
    assert events[0].data["conversation_id"] == conversation_id and uuid.UUID(conversation_id)
    assert [c["action"] for c in of(events, "tool_call")] == ["keywords.list"]
    assert of(events, "tool_result")[0]["ok"]
    text = text_of(events)
    assert "best running shoes" in text and "| keyword" in text

    again = await turn(
        client, t.api_key, message="how many credits do I have?", conversation_id=conversation_id
    )
    assert again[-1].data["conversation_id"] == conversation_id and "credits" in text_of(again)


async def test_long_actions_stream_job_and_progress_events(client, tenants):
    t = await tenants.create(credits=100)
    await t.keywords(
        "best running shoes", "trail running shoes", "running shoes for women", "marathon training plan"
    )
    ctx = {"site_id": t.site_id, "sector_id": t.sector_id}
    events = await turn(client, t.api_key, message="cluster my keywords", **ctx)
    jobs = of(events, "job")
    assert [j["status"] for j in jobs] == ["started", "done"] and jobs[0]["action"] == "keywords.auto_cluster"
    progress = of(events, "progress")
    assert progress and all(p["job_id"] == jobs[0]["job_id"] for p in progress)
    assert any(p["total"] and p["done"] <= p["total"] for p in progress)
    assert "credits used" in text_of(events)


async def test_a_streaming_model_sends_tokens_and_the_facade_says_it_once(db, tenants, openai_stub):
    t = await tenants.create()
    await t.keywords("red shoes")
    model = TolerantChatOpenAI(
        base_url=openai_stub.base_url,
        api_key=openai_stub.api_key,
        model=openai_stub.model,
        max_retries=0,
        streaming=True,
    )
    reply = "You have one keyword: red shoes. Want me to cluster it?"
    async with open_checkpointer(db.url) as saver:
        client = await serve(db, Conversations(db, saver, model))
        try:
            openai_stub.chat(tool_call_reply(("keywords__list", {})), text_reply(reply))
            events = await turn(client, t.api_key, message="what do I have?")
            tokens = of(events, "token")
            assert len(tokens) > 3 and "".join(x["text"] for x in tokens) == reply
            assert of(events, "message")[-1]["text"] == reply

            openai_stub.chat(tool_call_reply(("keywords__list", {})), text_reply(reply))
            stream = await openai_client(client, t.api_key).chat.completions.create(
                model="igny8-agent", messages=[{"role": "user", "content": "again?"}], stream=True
            )
            assert "".join([c.choices[0].delta.content or "" async for c in stream]) == reply
        finally:
            await client.close()


async def test_a_turn_outlives_its_reader_and_quiet_spells_yield_heartbeats():
    app = web.Application()
    sse.install(app)
    finished = asyncio.Event()

    async def slow_turn() -> AsyncIterator[AgentEvent]:
        yield AgentEvent("token", {"text": "a"})
        await asyncio.sleep(0.05)
        yield AgentEvent("message", {"text": "a"})
        finished.set()

    reader = sse.detached(app, slow_turn(), heartbeat=0.01)
    first = await anext(reader)
    assert first.kind == "token" and await anext(reader) is None  # nothing for 10 ms: keep-alive
    await reader.aclose()  # the client went away
    await asyncio.wait_for(finished.wait(), 2)
    await asyncio.sleep(0)
    assert not app[sse.RUNS]


@pytest.mark.parametrize("decision", ["reject", "approve", "edit"])
async def test_bulk_delete_waits_for_a_decision_sent_by_a_second_request(client, tenants, decision):
    t = await tenants.create()
    a, b = await t.keywords("alpha", "beta")
    cid = f"del-{decision}"
    events = await turn(client, t.api_key, message=f"delete keywords {a} and {b}", conversation_id=cid)
    [ask] = of(events, "confirm")
    assert ask["action"] == "keywords.bulk_delete" and sorted(ask["arguments"]["ids"]) == [a, b]
    assert ask["allowed"] == ["approve", "edit", "reject"] and ask["interrupt_id"]
    assert events[-1].event == "done" and (await t.run("keywords.list")).count == 2

    body = {"decision": decision} | ({"arguments": {"ids": [a]}} if decision == "edit" else {})
    after = await turn(client, t.api_key, f"/api/v1/chat/{cid}/resume", **body)
    remaining = {k.keyword for k in (await t.run("keywords.list")).results}
    assert remaining == {"reject": {"alpha", "beta"}, "approve": set(), "edit": {"beta"}}[decision]
    [result] = of(after, "tool_result")
    assert ("rejected" in result["content"]) == (decision == "reject")
    assert ("didn't do it" in text_of(after)) == (decision == "reject")
    assert after[-1].event == "done"

    nothing = await turn(client, t.api_key, f"/api/v1/chat/{cid}/resume", decision="approve")
    assert "nothing waiting" in of(nothing, "error")[0]["message"]


async def test_history_is_the_callers_own(client, tenants):
    mine, theirs = await tenants.create(), await tenants.create()
    await mine.keywords("secret plan")
    events = await turn(client, mine.api_key, message="show my keywords", conversation_id="shared-name")
    assert "secret plan" in text_of(events)

    response = await client.get("/api/v1/chat/shared-name", headers=auth(mine.api_key))
    body = await response.json()
    assert response.status == 200 and body["success"] is True
    assert body["data"]["conversation_id"] == "shared-name"
    roles = [m["role"] for m in body["data"]["messages"]]
    assert roles[0] == "user" and roles[-1] == "assistant" and "tool" in roles
    assert body["data"]["messages"][0]["content"] == "show my keywords"

    response = await client.get("/api/v1/chat/shared-name", headers=auth(theirs.api_key))
    assert (await response.json())["data"]["messages"] == []
    # Their resume and their next message land on their own empty thread, not on mine.
    resumed = await turn(client, theirs.api_key, "/api/v1/chat/shared-name/resume", decision="approve")
    assert of(resumed, "error") and "secret" not in str([e.data for e in resumed])
    answered = await turn(client, theirs.api_key, message="show my keywords", conversation_id="shared-name")
    assert "secret" not in str([e.data for e in answered])


async def test_server_files_are_never_reachable_from_http(client, tenants, tmp_path):
    t = await tenants.create()
    (tmp_path / "kw.csv").write_text("keyword\nfrom the server disk\n")
    message = f"/igny8 keywords import {tmp_path / 'kw.csv'} site={t.site_id} sector={t.sector_id}"
    events = await turn(client, t.api_key, message=message)
    [result] = of(events, "tool_result")
    assert not result["ok"] and "attach the file" in result["content"]
    assert (await t.run("keywords.list")).count == 0


async def form_turn(client: TestClient, key: str, files: dict[str, str], **fields) -> list[SseEvent]:
    form = FormData()
    for name, value in fields.items():
        form.add_field(name, str(value))
    for filename, text in files.items():
        form.add_field("file", text.encode(), filename=filename, content_type="text/csv")
    response = await client.post("/api/v1/chat", data=form, headers=auth(key))
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


async def test_an_attached_csv_is_imported_and_stays_with_the_conversation(client, tenants, tmp_path):
    t = await tenants.create()
    where = {"site_id": t.site_id, "sector_id": t.sector_id}
    csv_text = "keyword,volume\nbest running shoes,900\ntrail running shoes,400\n"
    events = await form_turn(
        client, t.api_key, {"my keywords.csv": csv_text}, message="import these", **where
    )
    [call] = of(events, "tool_call")
    assert call["action"] == "keywords.import_csv" and call["arguments"]["file"] == "my-keywords.csv"
    assert of(events, "tool_result")[0]["ok"] and (await t.run("keywords.list")).count == 2

    # A later message may name it again; a path on the server still reads the attachment, not the disk.
    (tmp_path / "kw.csv").write_text("keyword\nfrom the server disk\n")
    conversation = {"conversation_id": events[0].data["conversation_id"], **where}
    again = await turn(client, t.api_key, message=f"import {tmp_path / 'kw.csv'}", **conversation)
    assert "Imported 0 of 2 keywords (2 already there or repeated in the file)." in text_of(again)
    assert {k.keyword for k in (await t.run("keywords.list")).results} == {
        "best running shoes",
        "trail running shoes",
    }

    two = {"a.csv": "keyword\nalpha\n", "b.csv": "keyword\nbeta\n"}
    ambiguous = await form_turn(client, t.api_key, two, message="import keywords from c.csv", **where)
    [result] = of(ambiguous, "tool_result")
    assert not result["ok"] and "say which attachment: a.csv, b.csv" in result["content"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/chat", {}, "message"),
        ("/api/v1/chat", {"message": "   "}, "message"),
        ("/api/v1/chat", {"message": "hi", "site_id": "abc"}, "site_id"),
        ("/api/v1/chat", {"message": "hi", "sector_id": -2}, "sector_id"),
        ("/api/v1/chat", {"message": "hi", "conversation_id": "a b/../c"}, "conversation_id"),
        ("/api/v1/chat", {"message": "hi", "siteId": 3}, "siteId"),
        ("/api/v1/chat", [1, 2], "body"),
        ("/api/v1/chat/c1/resume", {"decision": "maybe"}, "decision"),
        ("/api/v1/chat/c1/resume", {}, "decision"),
        ("/api/v1/chat/c1/resume", {"decision": "edit"}, "input"),
        ("/api/v1/chat/bad%20id/resume", {"decision": "approve"}, "conversation_id"),
    ],
)
async def test_bad_input_is_a_400_envelope_naming_the_field(client, tenants, path, body, field):
    t = await tenants.create()
    response = await client.post(path, json=body, headers=auth(t.api_key))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "validation_error" and error["message"]
    assert field in [d["field"] for d in error["details"]], error


async def test_invalid_json_and_missing_credentials(client, tenants):
    t = await tenants.create()
    response = await client.post("/api/v1/chat", data="{not json", headers=auth(t.api_key))
    assert response.status == 400 and (await response.json())["error"]["details"][0]["field"] == "body"
    assert (await client.post("/api/v1/chat", json={"message": "hi"})).status == 401
    assert (await client.get("/api/v1/chat/c1")).status == 401
    bad_key = auth("igny8_not-a-real-key")
    assert (await client.post("/api/v1/chat", json={"message": "hi"}, headers=bad_key)).status == 401


# --- the OpenAI façade -------------------------------------------------------------------------------


async def test_openai_client_lists_the_model_and_chats_without_streaming(client, tenants):
    t = await tenants.create()
    await t.keywords("best running shoes")
    ai = openai_client(client, t.api_key)
    assert [m.id for m in (await ai.models.list()).data] == ["igny8-agent"]

    reply = await ai.chat.completions.create(
        model="igny8-agent",
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "show my keywords"}],
        user=f"oa-{uuid.uuid4().hex[:6]}",
    )
    assert reply.object == "chat.completion" and reply.model == "igny8-agent"
    [choice] = reply.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "best running shoes" in choice.message.content


async def test_openai_client_streams_and_a_yes_answers_the_confirmation(client, tenants):
    t = await tenants.create()
    a, b = await t.keywords("alpha", "beta")
    ai = openai_client(client, t.api_key, default_headers={"X-Conversation-Id": f"oa-{uuid.uuid4().hex[:6]}"})

    async def say(history: list[dict]) -> str:
        stream = await ai.chat.completions.create(model="igny8-agent", messages=history, stream=True)
        chunks = [c async for c in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        return "".join(c.choices[0].delta.content or "" for c in chunks)

    history = [{"role": "user", "content": "show my keywords"}]
    listed = await say(history)
    assert "alpha" in listed and "beta" in listed
    history += [
        {"role": "assistant", "content": listed},
        {"role": "user", "content": f"delete keywords {a}, {b}"},
    ]
    asked = await say(history)
    assert "keywords.bulk_delete" in asked and "reply yes or no" in asked
    assert (await t.run("keywords.list")).count == 2
    history += [{"role": "assistant", "content": asked}, {"role": "user", "content": "yes"}]
    await say(history)  # the whole transcript is resent; only "yes" reaches the agent
    assert (await t.run("keywords.list")).count == 0


async def test_openai_client_gets_openai_errors(client, tenants):
    t = await tenants.create()
    ai = openai_client(client, t.api_key)
    with pytest.raises(openai.BadRequestError) as bad:
        await ai.chat.completions.create(model="igny8-agent", messages=[{"role": "system", "content": "x"}])
    assert bad.value.param == "messages"
    with pytest.raises(openai.BadRequestError):
        await ai.chat.completions.create(model="igny8-agent", messages=[])
    with pytest.raises(openai.AuthenticationError):
        await openai_client(client, "igny8_wrong").models.list()
