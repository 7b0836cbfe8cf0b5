"""Providers against local servers that speak the real wire protocols (tests/stubs); nothing in the
client is patched. Timing assertions use the stub's arrival timestamps."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, Field

from storage.settings import Settings
from tests.stubs.fixtures import openai_stub_fixture, runware_stub_fixture  # noqa: F401
from tests.stubs.openai_stub import (
    OpenAIStub,
    dropped_connection,
    error_reply,
    json_reply,
    rate_limit_reply,
    server_error_reply,
    slow_reply,
    text_reply,
    tool_call_reply,
    truncated_reply,
)
from tests.stubs.runware_stub import COST_PER_IMAGE, RunwareStub, runware_error
from tests.stubs.scripted import RecordedRequest, Reply
from tools.ai.providers import images as image_providers
from tools.ai.providers import openai_compat
from tools.ai.providers.base import OutputInvalid, ProviderAuthError, ProviderError, ProviderRejected
from tools.ai.providers.images import OpenAIImages, RunwareImages, snap_openai_size, snap_runware_side
from tools.ai.providers.openai_compat import (
    OpenAICompatibleChat,
    RetryPolicy,
    extract_json,
    parse_retry_after,
    strict_json_schema,
)
from tools.ai.ratelimit import InProcessRateLimiter, RateLimits, limited

FAST = RetryPolicy(max_retries=3, base_delay_s=0.01, max_delay_s=0.05)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Brief(BaseModel):
    title: str
    keywords: list[str]
    word_count: int = Field(ge=100)
    notes: str | None = None


GOOD = {"title": "Best hiking boots", "keywords": ["boots", "hiking"], "word_count": 1200, "notes": None}


def chat_for(stub: OpenAIStub, **kw: Any) -> OpenAICompatibleChat:
    kw.setdefault("retry", FAST)
    kw.setdefault("api_key", stub.api_key)
    return OpenAICompatibleChat(base_url=stub.base_url, model="gpt-4o-mini", **kw)


async def ask(chat: OpenAICompatibleChat, **kw: Any) -> Any:
    return await chat.structured(
        account_id=1, system="You write SEO briefs.", prompt="Brief for: hiking boots", schema=Brief, **kw
    )


def last_user_message(req: RecordedRequest) -> str:
    return [m for m in req.json["messages"] if m["role"] == "user"][-1]["content"]


# ------------------------------------------------------------------------------------------------
# Structured output


async def test_structured_happy_path_sends_strict_schema_and_reports_usage(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(json_reply(GOOD, usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    async with chat_for(openai_stub) as chat:
        result = await ask(chat)

    assert result.output == Brief(**GOOD)
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.requests) == (1000, 500, 1)
    assert result.usage.model == "gpt-4o-mini"
    assert result.usage.cost_usd == Decimal("0.00045")  # 1000 * 0.15/M + 500 * 0.60/M
    [req] = openai_stub.chat_requests()
    assert req.auth == f"Bearer {openai_stub.api_key}"
    fmt = req.json["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Brief" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"title", "keywords", "word_count", "notes"}
    assert req.json["max_tokens"] == 4000 and req.json["temperature"] == 0.7
    assert [m["role"] for m in req.json["messages"]] == ["system", "user"]


async def test_unknown_model_costs_zero(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(json_reply(GOOD, model="qwen2.5-7b-instruct-q4"))
    async with chat_for(openai_stub) as chat:
        result = await ask(chat)
    assert result.usage.model == "qwen2.5-7b-instruct-q4"
    assert result.usage.cost_usd == Decimal(0)
    assert result.usage.input_tokens > 0


def test_strict_schema_falls_back_to_non_strict_for_free_form_mappings() -> None:
    class Loose(BaseModel):
        scores: dict[str, int]

    _, strict = strict_json_schema(Loose)
    assert strict is False
    _, strict = strict_json_schema(Brief)
    assert strict is True


async def test_degrades_json_schema_to_json_object_on_llama_cpp_400_and_remembers(
    openai_stub: OpenAIStub,
) -> None:
    openai_stub.act_like_llama_cpp(400)
    openai_stub.chat(json_reply(GOOD), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        assert (await ask(chat)).output.title == GOOD["title"]
        assert chat.current_mode() == "json_object"
        await ask(chat)
    async with chat_for(openai_stub) as other_instance:  # memory is per base URL, not per instance
        assert other_instance.current_mode() == "json_object"

    reqs = openai_stub.chat_requests()
    assert [r.json["response_format"]["type"] for r in reqs] == ["json_schema", "json_object", "json_object"]
    assert [r.status for r in reqs] == [400, 200, 200]
    system = reqs[1].json["messages"][0]["content"]
    assert "JSON" in system and "word_count" in system  # schema is spelled out when not enforced


async def test_llama_cpp_500_format_refusal_degrades_without_burning_retries(openai_stub: OpenAIStub) -> None:
    openai_stub.act_like_llama_cpp(500)
    openai_stub.chat(json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        await ask(chat)
    assert [r.status for r in openai_stub.chat_requests()] == [500, 200]


async def test_a_refused_schema_relaxes_only_that_call(openai_stub: OpenAIStub) -> None:
    complaint = (
        "Invalid schema for response_format 'Brief': In context=(), 'additionalProperties' is required "
        "to be supplied and to be false."
    )
    openai_stub.chat(
        error_reply(400, complaint), error_reply(400, complaint), json_reply(GOOD), json_reply(GOOD)
    )
    async with chat_for(openai_stub) as chat:
        await ask(chat)
        assert chat.current_mode() == "json_schema"  # the server still supports json_schema
        await ask(chat)
    formats = [r.json["response_format"] for r in openai_stub.chat_requests()]
    assert [f["type"] for f in formats] == ["json_schema", "json_schema", "json_object", "json_schema"]
    assert [formats[0]["json_schema"]["strict"], formats[1]["json_schema"]["strict"]] == [True, False]


async def test_degrades_to_json_in_text_and_extracts_fenced_json(openai_stub: OpenAIStub) -> None:
    openai_stub.accepted_formats = {"text"}
    openai_stub.chat(
        text_reply(f"Sure! Here it is:\n```json\n{json.dumps(GOOD, indent=2)}\n```\nAnything else?")
    )
    async with chat_for(openai_stub) as chat:
        result = await ask(chat)
    assert result.output == Brief(**GOOD)
    reqs = openai_stub.chat_requests()
    assert [r.json.get("response_format", {}).get("type") for r in reqs] == [
        "json_schema",
        "json_object",
        None,
    ]


async def test_configured_text_mode_never_sends_response_format(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(text_reply(json.dumps(GOOD)))
    async with chat_for(openai_stub, response_format="text") as chat:
        await ask(chat)
    [req] = openai_stub.chat_requests()
    assert "response_format" not in req.json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Here you go: {"a": {"b": "}"}} — done', {"a": {"b": "}"}}),
        ('```json\n{"a": 2}\n```', {"a": 2}),
        ('```\n{"a": 3}\n```', {"a": 3}),
        ('<think>maybe {"a": 0}?</think>\n{"a": 4}', {"a": 4}),
        ('[1, 2] then {"a": 5}', {"a": 5}),
    ],
)
def test_extract_json_finds_the_object(text: str, expected: dict[str, Any]) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("no json at all", "no JSON object"),
        ('{"a": 1,', "invalid JSON"),
        ('{"title": "x", "inner": {"b": 1}, "c": [', "invalid JSON"),  # not the inner object
        ('```json\n{"a": {"b": 1}\n```', "invalid JSON"),
    ],
)
def test_extract_json_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        extract_json(text)


async def test_malformed_json_then_valid_succeeds_with_feedback(openai_stub: OpenAIStub) -> None:
    bad = '{"title": "Boots", keywords: [}'
    openai_stub.chat(text_reply(bad), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        result = await ask(chat)
    assert result.output == Brief(**GOOD)
    assert result.usage.requests == 2
    retry = openai_stub.chat_requests()[1]
    assistant = [m for m in retry.json["messages"] if m["role"] == "assistant"]
    assert assistant == [{"role": "assistant", "content": bad}]
    assert "invalid JSON" in last_user_message(retry)


async def test_schema_violation_feedback_names_the_field(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(json_reply({**GOOD, "word_count": 5}), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        await ask(chat)
    feedback = last_user_message(openai_stub.chat_requests()[1])
    assert "word_count" in feedback and "greater than or equal to 100" in feedback


async def test_always_malformed_raises_output_invalid_naming_the_problem(openai_stub: OpenAIStub) -> None:
    openai_stub.set_default("chat", text_reply("I'd rather write a poem."))
    async with chat_for(openai_stub) as chat:
        with pytest.raises(OutputInvalid, match="no JSON object found") as info:
            await ask(chat)
    assert len(openai_stub.chat_requests()) == 3  # first try + 2 corrective retries
    assert info.value.usage is not None and info.value.usage.requests == 3
    assert len(info.value.details["problems"]) == 3


async def test_truncated_output_is_retried_without_echoing_it(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(truncated_reply('{"title": "Best hik'), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        result = await ask(chat, max_tokens=50)
    assert result.output == Brief(**GOOD)
    retry = openai_stub.chat_requests()[1]
    assert "cut off" in last_user_message(retry)
    assert all(m["role"] != "assistant" for m in retry.json["messages"])


async def test_always_truncated_raises_output_invalid(openai_stub: OpenAIStub) -> None:
    openai_stub.set_default("chat", truncated_reply(json.dumps(GOOD)))  # even valid JSON is suspect
    async with chat_for(openai_stub) as chat:
        with pytest.raises(OutputInvalid, match="finish_reason=length"):
            await ask(chat)


# ------------------------------------------------------------------------------------------------
# Transport: retries, backoff, auth, redaction


async def test_429_retry_after_seconds_is_honoured(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(rate_limit_reply("1"), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        await ask(chat)
    first, second = openai_stub.chat_requests()
    assert first.status == 429 and second.status == 200
    assert 1.0 <= second.at - first.at < 2.0


async def test_429_retry_after_ms_is_preferred(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(rate_limit_reply("30", retry_after_ms="300"), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        await ask(chat)
    first, second = openai_stub.chat_requests()
    assert 0.3 <= second.at - first.at < 1.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert (
        parse_retry_after({"Retry-After": format_datetime(now + timedelta(seconds=42), usegmt=True)}, now=now)
        == 42
    )
    assert (
        parse_retry_after({"Retry-After": format_datetime(now - timedelta(seconds=5), usegmt=True)}, now=now)
        == 0
    )
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_grows_with_jitter_and_caps() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 8.0)]:
        delays = {policy.delay(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert 3.0 <= policy.delay(0, retry_after=3.0) <= 3.3


async def test_5xx_is_retried_then_succeeds(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(server_error_reply(500), server_error_reply(503), json_reply(GOOD))
    async with chat_for(openai_stub) as chat:
        await ask(chat)
    assert [r.status for r in openai_stub.chat_requests()] == [500, 503, 200]


async def test_persistent_5xx_gives_up_with_provider_error(openai_stub: OpenAIStub) -> None:
    openai_stub.set_default("chat", server_error_reply(502))
    async with chat_for(openai_stub) as chat:
        with pytest.raises(ProviderError, match="gave up after 4") as info:
            await ask(chat)
    assert not isinstance(info.value, OutputInvalid)
    assert len(openai_stub.chat_requests()) == 4


async def test_timeout_and_dropped_connection_are_retried(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(slow_reply(0.6, json_reply(GOOD)), dropped_connection(), json_reply(GOOD))
    async with chat_for(openai_stub, timeout_s=0.3) as chat:
        assert (await ask(chat)).output.title == GOOD["title"]
    assert len(openai_stub.chat_requests()) == 3


async def test_401_raises_auth_error_without_retry_and_hides_the_key(openai_stub: OpenAIStub) -> None:
    wrong_key = "sk-wrong-but-secret-9876543210"
    openai_stub.echo_key_in_errors = True  # a careless server that repeats the key back
    async with chat_for(openai_stub, api_key=wrong_key) as chat:
        with pytest.raises(ProviderAuthError) as info:
            await ask(chat)
    [req] = openai_stub.chat_requests()
    assert wrong_key in json.dumps(req.response)  # the server really did echo it
    assert wrong_key not in str(info.value)
    assert wrong_key not in json.dumps(info.value.to_dict())


async def test_api_key_never_appears_in_errors_or_logs(
    openai_stub: OpenAIStub, caplog: pytest.LogCaptureFixture
) -> None:
    openai_stub.echo_key_in_errors = True
    key = openai_stub.api_key
    assert key is not None
    caplog.set_level(logging.DEBUG)
    openai_stub.chat(server_error_reply(), server_error_reply(), server_error_reply(), server_error_reply())
    openai_stub.chat(error_reply(400, "Bad things in request"))
    async with chat_for(openai_stub) as chat:
        assert key not in repr(chat) and key not in repr(chat.transport)
        with pytest.raises(ProviderError) as gave_up:
            await ask(chat)
        with pytest.raises(ProviderRejected) as rejected:
            await ask(chat)
    for exc in (gave_up.value, rejected.value):
        assert key not in str(exc) and key not in json.dumps(exc.to_dict(), default=str)
    assert "Bad things in request" in str(rejected.value)
    assert caplog.text and key not in caplog.text


async def test_insufficient_quota_is_not_retried(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(
        error_reply(
            429, "You exceeded your current quota", type_="insufficient_quota", code="insufficient_quota"
        )
    )
    async with chat_for(openai_stub) as chat:
        with pytest.raises(ProviderError, match="quota"):
            await ask(chat)
    assert len(openai_stub.chat_requests()) == 1


async def test_adapts_to_models_that_want_max_completion_tokens(openai_stub: OpenAIStub) -> None:
    refusal = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'."
    )
    openai_stub.chat(
        error_reply(400, refusal, code="unsupported_parameter"), json_reply(GOOD), json_reply(GOOD)
    )
    async with chat_for(openai_stub) as chat:
        await ask(chat)
        await ask(chat)
    first, second, third = openai_stub.chat_requests()
    assert "max_tokens" in first.json
    for req in (second, third):
        assert req.json["max_completion_tokens"] == 4000 and "max_tokens" not in req.json


async def test_complete_never_sends_null_content_and_reads_tool_calls(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(tool_call_reply(("search_keywords", {"q": "boots"})))
    history = [
        {"role": "user", "content": "find keywords"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "[]"},
    ]
    async with chat_for(openai_stub) as chat:
        reply = await chat.complete(
            account_id=1,
            messages=history,
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "search_keywords",
                        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                    },
                }
            ],
        )
    sent = openai_stub.chat_requests()[0].json["messages"]
    assert sent[1]["content"] == ""
    assert reply.content == "" and reply.finish_reason == "tool_calls"
    assert json.loads(reply.tool_calls[0]["function"]["arguments"]) == {"q": "boots"}
    assert reply.as_message()["content"] == ""


async def test_test_connection_reports_model_and_latency(openai_stub: OpenAIStub) -> None:
    openai_stub.chat(text_reply("OK"))
    check = await openai_compat.test_connection(
        base_url=openai_stub.base_url, api_key=openai_stub.api_key, model="gpt-4o-mini"
    )
    assert check.model == "gpt-4o-mini" and check.latency_ms >= 0 and check.detail == "OK"
    assert "temperature" not in openai_stub.chat_requests()[0].json
    with pytest.raises(ProviderAuthError):
        await openai_compat.test_connection(base_url=openai_stub.base_url, api_key="sk-nope-nope", model="x")


def test_from_settings_builds_a_configured_client() -> None:
    settings = Settings(
        llm_base_url="http://127.0.0.1:9/v1/",
        llm_api_key="sk-x",
        llm_model="m",
        llm_response_format="json_object",
    )
    chat = OpenAICompatibleChat.from_settings(settings, limiter=InProcessRateLimiter(RateLimits()))
    assert (chat.base_url, chat.model, chat.response_format) == ("http://127.0.0.1:9/v1", "m", "json_object")


# ------------------------------------------------------------------------------------------------
# Rate limiting


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


async def test_batch_saturates_but_never_exceeds_rpm(openai_stub: OpenAIStub) -> None:
    """10 requests per 1 s window (= 600 rpm with a 60 s window). The server enforces the limit over
    0.8 s: the slack absorbs loopback jitter (a request is counted when its slot is granted, and
    arrives a few ms later), while a limiter that let an 11th request into a window, or burst at a
    window boundary, would still put 11 arrivals inside 0.8 s and draw a 429."""
    openai_stub.enforce_rpm(10, window_s=0.8)
    openai_stub.set_default("chat", json_reply(GOOD))
    limiter = InProcessRateLimiter(RateLimits(rpm=10, window_s=1.0))
    async with chat_for(openai_stub, limiter=limiter) as chat:
        started = time.monotonic()
        results = await asyncio.gather(*(ask(chat) for _ in range(30)))
        elapsed = time.monotonic() - started
    assert len(results) == 30
    reqs = openai_stub.chat_requests()
    assert [r.status for r in reqs] == [200] * 30  # not a single 429: the limiter kept us under
    times = [r.at for r in reqs]
    assert max_in_window(times, 0.8) <= 10
    assert max(times) - min(times) >= 1.9 and elapsed < 3.5  # saturated: 3 windows' worth, no idling


async def test_limiter_is_per_account() -> None:
    limiter = InProcessRateLimiter(RateLimits(rpm=2, window_s=5.0))
    for _ in range(2):
        await (await limiter.acquire("1")).release()
    started = time.monotonic()
    await (await limiter.acquire("2")).release()  # account 2 has its own budget
    assert time.monotonic() - started < 0.05
    assert limiter.usage("1") == (2, 0)


async def test_limiter_hundreds_of_waiters_stay_within_the_window() -> None:
    limiter = InProcessRateLimiter(RateLimits(rpm=100, window_s=0.2))
    granted: list[float] = []

    async def one() -> None:
        async with limited(limiter, "acct"):
            granted.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(400)))
    assert len(granted) == 400
    assert time.monotonic() - started >= 0.6  # 400 at 100 per 0.2 s: three full windows of waiting
    assert max_in_window(granted, 0.17) <= 100  # 30 ms slack for task wake-up


async def test_limiter_tpm_waits_and_settle_frees_tokens_early() -> None:
    limiter = InProcessRateLimiter(RateLimits(tpm=100, window_s=5.0))
    first = await limiter.acquire("a", 80)
    waiter = asyncio.create_task(limiter.acquire("a", 50))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # 80 + 50 > 100
    await first.settle(20)  # the real usage was smaller than the estimate
    second = await asyncio.wait_for(waiter, timeout=0.5)
    assert limiter.usage("a") == (2, 70)
    for lease in (first, second):
        await lease.release()


async def test_limiter_lets_an_oversized_request_through_an_empty_window() -> None:
    limiter = InProcessRateLimiter(RateLimits(tpm=100, window_s=5.0))
    lease = await asyncio.wait_for(limiter.acquire("a", 500), timeout=0.2)
    await lease.release()


async def test_limiter_caps_concurrency() -> None:
    limiter = InProcessRateLimiter(RateLimits(max_concurrency=3))
    in_flight = peak = 0

    async def one() -> None:
        nonlocal in_flight, peak
        async with limited(limiter, "a"):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1

    await asyncio.gather(*(one() for _ in range(12)))
    assert peak == 3


async def test_limiter_pause_holds_new_requests() -> None:
    limiter = InProcessRateLimiter(RateLimits(rpm=100))
    await limiter.pause("a", 0.2)
    started = time.monotonic()
    await (await limiter.acquire("a")).release()
    assert time.monotonic() - started >= 0.19


# ------------------------------------------------------------------------------------------------
# The OpenAI stub's streaming protocol (used by the agent loop's tests)


async def read_sse(url: str, body: dict[str, Any], key: str | None) -> list[Any]:
    events: list[Any] = []
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.content:
            text = line.decode().strip()
            if text.startswith("data: "):
                payload = text.removeprefix("data: ")
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


async def test_stub_streams_text_and_tool_calls_as_sse(openai_stub: OpenAIStub) -> None:
    url = f"{openai_stub.base_url}/chat/completions"
    openai_stub.chat(text_reply("Hello there, world"), tool_call_reply(("get_site", {"site_id": 42})))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    events = await read_sse(url, {**body, "stream_options": {"include_usage": True}}, openai_stub.api_key)
    assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and events[-2]["usage"]["total_tokens"] > 0
    chunks = [e for e in events[:-2] if e["object"] == "chat.completion.chunk"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello there, world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    events = await read_sse(url, body, openai_stub.api_key)
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_site"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"site_id": 42}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


# ------------------------------------------------------------------------------------------------
# Images: OpenAI


def test_openai_sizes_snap_to_the_nearest_supported_shape() -> None:
    assert snap_openai_size("dall-e-3", 1280, 720) == "1792x1024"
    assert snap_openai_size("dall-e-3", 720, 1280) == "1024x1792"
    assert snap_openai_size("gpt-image-1", 1600, 900) == "1536x1024"
    assert snap_openai_size("dall-e-2", 300, 300) == "256x256"
    assert snap_openai_size("some-local-model", 640, 480) == "640x480"
    assert (
        snap_runware_side(1000) == 1024 and snap_runware_side(50) == 128 and snap_runware_side(4000) == 2048
    )


async def test_openai_images_b64(openai_stub: OpenAIStub) -> None:
    async with OpenAIImages(base_url=openai_stub.base_url, api_key=openai_stub.api_key, retry=FAST) as images:
        image = await images.generate(account_id=1, prompt="a hiking boot on a rock", width=1280, height=720)
    assert image.data is not None and image.data.startswith(PNG_MAGIC) and image.url is None
    assert image.mime_type == "image/png"
    assert image.usage.cost_usd == Decimal("0.080") and image.usage.requests == 1
    [req] = openai_stub.requests_to("/images/generations")
    assert req.json == {
        "model": "dall-e-3",
        "prompt": "a hiking boot on a rock",
        "n": 1,
        "size": "1792x1024",
        "response_format": "b64_json",
    }


async def test_openai_images_url(openai_stub: OpenAIStub) -> None:
    async with OpenAIImages(
        base_url=openai_stub.base_url, api_key=openai_stub.api_key, response_format="url", retry=FAST
    ) as images:
        image = await images.generate(account_id=1, prompt="a boot", width=1024, height=1024)
    assert image.data is None and image.url is not None and image.url.startswith(openai_stub.url)
    assert image.mime_type == "image/png"
    async with aiohttp.ClientSession() as http, http.get(image.url) as resp:
        assert (await resp.read()).startswith(PNG_MAGIC)


async def test_gpt_image_omits_response_format_and_prices_tokens(openai_stub: OpenAIStub) -> None:
    async with OpenAIImages(
        base_url=openai_stub.base_url, api_key=openai_stub.api_key, model="gpt-image-1", retry=FAST
    ) as images:
        image = await images.generate(account_id=1, prompt="a boot", width=1600, height=900)
    [req] = openai_stub.requests_to("/images/generations")
    assert "response_format" not in req.json and req.json["size"] == "1536x1024"
    assert image.data is not None and image.data.startswith(PNG_MAGIC)
    assert (image.usage.input_tokens, image.usage.output_tokens) == (12, 4160)
    assert image.usage.cost_usd == Decimal("0.16646")  # 12 * 5/M + 4160 * 40/M


async def test_openai_images_share_the_retry_policy(openai_stub: OpenAIStub) -> None:
    openai_stub.images(rate_limit_reply(None, retry_after_ms="200"), server_error_reply())
    async with OpenAIImages(base_url=openai_stub.base_url, api_key=openai_stub.api_key, retry=FAST) as images:
        await images.generate(account_id=1, prompt="a boot", width=1024, height=1024)
    assert [r.status for r in openai_stub.requests_to("/images/generations")] == [429, 500, 200]


async def test_openai_images_connection_check(openai_stub: OpenAIStub) -> None:
    check = await image_providers.test_openai_images_connection(
        base_url=openai_stub.base_url, api_key=openai_stub.api_key, model="dall-e-3"
    )
    assert check.detail == "model listed"
    with pytest.raises(ProviderAuthError):
        await image_providers.test_openai_images_connection(
            base_url=openai_stub.base_url, api_key="sk-bad-key"
        )


# ------------------------------------------------------------------------------------------------
# Images: Runware


def runware_for(stub: RunwareStub, **kw: Any) -> RunwareImages:
    kw.setdefault("api_key", stub.api_key)
    return RunwareImages(base_url=stub.base_url, retry=FAST, **kw)


async def test_runware_url_output_and_request_shape(runware_stub: RunwareStub) -> None:
    async with runware_for(runware_stub) as runware:
        image = await runware.generate(account_id=1, prompt="a hiking boot", width=1000, height=700)
    assert image.data is None and image.url is not None and image.url.endswith(".webp")
    assert image.mime_type == "image/webp"
    assert image.usage.cost_usd == Decimal(str(COST_PER_IMAGE)) and image.usage.model == "runware:100@1"
    [req] = runware_stub.task_requests()
    auth, task = req.json
    assert auth == {"taskType": "authentication", "apiKey": runware_stub.api_key}
    assert uuid.UUID(task.pop("taskUUID")).version == 4
    assert task == {
        "taskType": "imageInference",
        "positivePrompt": "a hiking boot",
        "model": "runware:100@1",
        "width": 1024,
        "height": 704,
        "numberResults": 1,
        "outputType": "URL",
        "outputFormat": "WEBP",
        "includeCost": True,
    }
    assert "Authorization" not in req.headers


async def test_runware_base64_output(runware_stub: RunwareStub) -> None:
    async with runware_for(runware_stub, output_type="base64Data", output_format="PNG") as runware:
        image = await runware.generate(
            account_id=1, prompt="a boot", width=512, height=512, model="civitai:1@2"
        )
    assert image.url is None and image.data is not None and image.data.startswith(PNG_MAGIC)
    assert image.mime_type == "image/png" and image.usage.model == "civitai:1@2"


async def test_runware_error_response_is_a_rejection_not_retried(runware_stub: RunwareStub) -> None:
    runware_stub.tasks(
        runware_error("invalidModel", "The model runware:999@9 does not exist.", parameter="model")
    )
    async with runware_for(runware_stub) as runware:
        with pytest.raises(ProviderRejected, match="invalidModel: The model runware:999@9 does not exist"):
            await runware.generate(account_id=1, prompt="a boot", width=512, height=512)
    assert len(runware_stub.task_requests()) == 1


async def test_runware_bad_key_is_an_auth_error_and_stays_secret(runware_stub: RunwareStub) -> None:
    runware_stub.echo_key_in_errors = True
    secret = "rw-wrong-secret-key-5555"
    async with runware_for(runware_stub, api_key=secret) as runware:
        with pytest.raises(ProviderAuthError) as info:
            await runware.generate(account_id=1, prompt="a boot", width=512, height=512)
    assert secret in json.dumps(runware_stub.task_requests()[0].response)
    assert secret not in str(info.value) and "invalidApiKey" in str(info.value)
    assert len(runware_stub.task_requests()) == 1


async def test_runware_transient_failures_are_retried(runware_stub: RunwareStub) -> None:
    runware_stub.tasks(
        Reply(status=503, body={"errors": [{"code": "serviceUnavailable", "message": "busy"}]}),
        Reply(status=200, body={"errors": [{"code": "timeoutProvider", "message": "provider timed out"}]}),
        Reply(
            status=429,
            body={"errors": [{"code": "rateLimitExceeded", "message": "slow down"}]},
            headers={"Retry-After": "0.2"},
        ),
    )
    async with runware_for(runware_stub) as runware:
        image = await runware.generate(account_id=1, prompt="a boot", width=512, height=512)
    assert image.url is not None
    reqs = runware_stub.task_requests()
    assert [r.status for r in reqs] == [503, 200, 429, 200]
    assert reqs[3].at - reqs[2].at >= 0.2


async def test_runware_connection_check(runware_stub: RunwareStub) -> None:
    check = await image_providers.test_runware_connection(
        api_key=runware_stub.api_key, base_url=runware_stub.base_url
    )
    assert check.detail == "authenticated"
    assert [t["taskType"] for t in runware_stub.task_requests()[0].json] == ["authentication"]
    with pytest.raises(ProviderAuthError):
        await image_providers.test_runware_connection(api_key="rw-bad", base_url=runware_stub.base_url)
