"""An offline chat session (no LLM anywhere): the interpreter drives the same graph and tools."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.memory import open_checkpointer
from agent.models import OfflineChatModel
from agent.runner import Conversations

CSV = (
    "keyword,volume\nbest running shoes,900\ntrail running shoes,700\nrunning shoes for women,500\n"
    "marathon training plan,800\nmarathon training schedule,300\n"
)


@pytest.fixture
async def chat(db) -> AsyncIterator[Conversations]:
    async with open_checkpointer(db.url) as saver:
        yield Conversations(db, saver, OfflineChatModel())


async def say(chat, t, text: str, **ctx) -> tuple[str, list]:
    events = [
        e
        async for e in chat.send(
            t.owner, "offline", text, site_id=t.site_id, sector_id=t.sector_id, local_files=True, **ctx
        )
    ]
    return "\n".join(e.data["text"] for e in events if e.kind == "message"), events


async def test_offline_session_imports_lists_clusters_and_asks_before_deleting(chat, tenants, tmp_path):
    t = await tenants.create(credits=100)
    path = tmp_path / "kw.csv"
    path.write_text(CSV)

    text, _ = await say(chat, t, f"/igny8 keywords import {path}")
    assert "Imported 5 of 5 keywords." in text
    text, _ = await say(chat, t, "show my keywords")
    assert "best running shoes" in text and "|" in text
    text, events = await say(chat, t, "cluster my keywords")
    assert any(e.kind == "job" and e.data["status"] == "done" for e in events)
    assert "credits used" in text and (await t.run("clusters.list")).count >= 2

    ids = [k.id for k in (await t.run("keywords.list")).results][:2]
    _, events = await say(chat, t, f"delete keywords {ids[0]} and {ids[1]}")
    [ask] = [e.data for e in events if e.kind == "confirm"]
    assert ask["action"] == "keywords.bulk_delete" and sorted(ask["arguments"]["ids"]) == sorted(ids)
    text, _ = await say(chat, t, "no")
    assert "didn't do it" in text and (await t.run("keywords.list")).count == 5
    await say(chat, t, f"delete keywords {ids[0]} and {ids[1]}")
    await say(chat, t, "yes")
    assert (await t.run("keywords.list")).count == 3

    text, _ = await say(chat, t, "how many credits do I have?")
    assert "credits" in text and "99" in text


async def test_offline_asks_for_what_is_missing_and_admits_confusion(chat, tenants):
    t = await tenants.create()
    text, events = await say(chat, t, "write articles")
    assert "task" in text.lower() and not [e for e in events if e.kind == "tool_call"]
    text, _ = await say(chat, t, "blorp the frobnicator quickly")
    assert "didn't understand" in text.lower() or "help" in text.lower()


async def test_offline_refuses_local_files_on_server_surfaces(db, tenants, tmp_path):
    t = await tenants.create()
    (tmp_path / "kw.csv").write_text(CSV)
    async with open_checkpointer(db.url) as saver:
        chat = Conversations(db, saver, OfflineChatModel())
        events = [
            e
            async for e in chat.send(
                t.owner,
                "http",
                f"/igny8 keywords import {tmp_path / 'kw.csv'} site={t.site_id} sector={t.sector_id}",
            )
        ]
    [result] = [e.data for e in events if e.kind == "tool_result"]
    assert not result["ok"] and "attach the file" in result["content"]
    assert (await t.run("keywords.list")).count == 0


async def test_attachments_past_the_budget_are_let_go_oldest_first(db, tenants) -> None:
    t = await tenants.create()
    async with open_checkpointer(db.url) as saver:
        chat = Conversations(db, saver, OfflineChatModel(), attachment_budget=len(CSV) * 2)

        async def turn(conversation: str, text: str, files: dict[str, bytes] | None = None) -> str:
            events = [
                e
                async for e in chat.send(
                    t.owner, conversation, text, site_id=t.site_id, sector_id=t.sector_id, attachments=files
                )
            ]
            return "\n".join(e.data.get("text", "") for e in events if e.kind == "message")

        for conversation in ("first", "second", "third"):  # each holds one file; only two fit
            await turn(conversation, "hello", {"kw.csv": CSV.encode()})
        assert "attach the file" in await turn("first", "import keywords from kw.csv")
        assert "Imported 5 of 5 keywords." in await turn("third", "import keywords from kw.csv")
