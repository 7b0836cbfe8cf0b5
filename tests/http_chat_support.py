"""The chat surface served for tests over a real TCP port, and an SSE reader for its answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from agent.runner import Conversations
from bots.http.app import create_app
from storage.db import Database


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: Any


def parse_sse(text: str) -> list[SseEvent]:
    """Frames as a browser's EventSource would see them; comment lines (keep-alives) are skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            raw = "\n".join(data)
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            events.append(SseEvent(name, value))
    return events


async def serve(db: Database, conversations: Conversations) -> TestClient:
    """The production app (``create_app``) on a real port; ``client.make_url`` gives addresses."""
    client = TestClient(TestServer(create_app(db, conversations)))
    await client.start_server()
    return client


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
