"""Structured output from any OpenAI-compatible ``/chat/completions`` server.

One client serves OpenAI itself and the servers that only imitate it (llama.cpp, vLLM, Ollama,
LM Studio, OpenRouter, ...). They differ in what they accept, so the client adapts instead of
assuming:

* ``response_format`` degrades ``json_schema`` → ``json_object`` → JSON asked for in the prompt,
  when the server rejects the stronger mode (remembered per base URL for the life of the process);
* ``max_tokens`` becomes ``max_completion_tokens`` and ``temperature`` is dropped when a model
  refuses them (OpenAI reasoning models), remembered per base URL and model;
* whatever the mode, the reply is parsed leniently (fences, prose, ``<think>`` blocks) and always
  validated with the pydantic schema; bad output is retried with the error fed back to the model.

Transport failures (429, 5xx, timeouts, dropped connections) are retried with exponential backoff
and jitter, honouring ``Retry-After``; 401/403 fail at once. :class:`JsonTransport` holds that policy
and is shared with the image providers. The API key is sent only in the ``Authorization`` header
and is scrubbed from every error message this module produces.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Self, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from tools.ai.providers.base import (
    ChatResult,
    OutputInvalid,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    RetryableError,
    Usage,
)
from tools.ai.ratelimit import NoRateLimit, RateLimiter, RateLimits, limited, shared_limiter

logger = logging.getLogger(__name__)

OutT = TypeVar("OutT", bound=BaseModel)
ResponseFormatMode = Literal["json_schema", "json_object", "text"]
MODES: tuple[ResponseFormatMode, ...] = ("json_schema", "json_object", "text")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"

# --------------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures.

    ``max_retries`` counts attempts after the first. Without ``Retry-After`` the delay is "equal
    jitter" exponential backoff (half fixed, half random) so a batch that failed together does not
    retry together. With ``Retry-After`` the server's figure is honoured (capped) plus a little jitter.
    """

    max_retries: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.max_retry_after_s)
            return wait + random.uniform(0, min(1.0, 0.1 * wait))
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms`` (OpenAI), then ``Retry-After`` as
    delta-seconds or an HTTP date. ``None`` when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = (headers.get("Retry-After") or headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --------------------------------------------------------------------------------------------------
# Error text


def redact(text: str, secret: str | None) -> str:
    """Remove ``secret`` from text that may end up in an exception, log line or API response."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def error_message(data: Any, raw: str, limit: int = 500) -> str:
    """The human part of an error body in the shapes seen in the wild: OpenAI ``{"error": {...}}``,
    ``{"error": "..."}``, FastAPI ``{"detail": ...}``, Runware ``{"errors": [...]}``, or raw text."""
    message: str | None = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("code") or err)
        elif err:
            message = str(err)
        elif isinstance(data.get("errors"), list) and data["errors"]:
            message = "; ".join(_runware_error_text(e) for e in data["errors"][:3])
        elif data.get("detail") or data.get("message"):
            message = str(data.get("detail") or data.get("message"))
    text = message if message is not None else raw.strip()
    text = " ".join(text.split())
    return text[:limit] if text else "(empty body)"


def _runware_error_text(err: Any) -> str:
    if not isinstance(err, dict):
        return str(err)
    code, msg = err.get("code"), err.get("message")
    return f"{code}: {msg}" if code and msg else str(msg or code or err)


def error_code(data: Any) -> str:
    """The machine-readable error code, if the body has one (OpenAI ``error.code``/``error.type``)."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return str(err.get("code") or err.get("type") or "")
    return ""


# --------------------------------------------------------------------------------------------------
# Transport


@dataclass
class HttpReply:
    status: int
    data: Any
    headers: Mapping[str, str]
    elapsed_s: float


Screen = Callable[[int, Any, str], None]
"""Provider hook run on every reply before the default status handling; it may raise
:class:`RetryableError`, :class:`ProviderRejected` or :class:`ProviderAuthError` to reclassify it."""


class JsonTransport:
    """JSON over HTTP with the retry, rate-limit and redaction policy every provider shares.

    Each attempt takes its own rate-limit slot (every attempt is a request the server counts).
    A 429 that names a delay also pauses the account's other requests for that long.
    """

    def __init__(
        self,
        *,
        provider: str,
        secret: str | None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 120.0,
        limiter: RateLimiter | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.limiter: RateLimiter = limiter or NoRateLimit()
        self._secret = secret
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"JsonTransport(provider={self.provider!r})"

    def scrub(self, text: str) -> str:
        return redact(text, self._secret)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "igny8-agent"})
            self._owns_session = True
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        account_id: int | str,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        est_tokens: int = 0,
        tokens_used: Callable[[Any], int | None] | None = None,
        screen: Screen | None = None,
    ) -> HttpReply:
        """Send until a 2xx arrives (returned) or a non-retryable failure / exhausted retries (raised)."""
        last: RetryableError | None = None
        attempts = self.retry.max_retries + 1
        for attempt in range(attempts):
            try:
                return await self._attempt(
                    method, url, str(account_id), json_body, headers, est_tokens, tokens_used, screen
                )
            except RetryableError as exc:
                last = exc
                if attempt + 1 >= attempts:
                    break
                if exc.retry_after:
                    await self.limiter.pause(str(account_id), exc.retry_after)
                delay = self.retry.delay(attempt, exc.retry_after)
                logger.warning(
                    "%s: %s; retry %d/%d in %.2fs",
                    self.provider,
                    self.scrub(str(exc)),
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                await asyncio.sleep(delay)
        raise ProviderError(
            self.scrub(f"{self.provider}: gave up after {attempts} attempt(s): {last}"),
            details={"provider": self.provider, "attempts": attempts},
        )

    async def _attempt(
        self,
        method: str,
        url: str,
        key: str,
        json_body: Any,
        headers: Mapping[str, str] | None,
        est_tokens: int,
        tokens_used: Callable[[Any], int | None] | None,
        screen: Screen | None,
    ) -> HttpReply:
        async with limited(self.limiter, key, est_tokens) as lease:
            started = time.monotonic()
            status, data, raw, resp_headers = await self._send(method, url, json_body, headers)
            elapsed = time.monotonic() - started
            if 200 <= status < 300 and data is not None:
                used = tokens_used(data) if tokens_used else None
                await lease.settle(est_tokens if used is None else used)
            else:
                await lease.settle(0)
        message = self.scrub(error_message(data, raw))
        if screen is not None:
            screen(status, data, message)
        if 200 <= status < 300:
            if data is None:
                raise RetryableError(f"HTTP {status} with a non-JSON body: {message[:200]}")
            return HttpReply(status, data, resp_headers, elapsed)
        self._raise_for(status, data, message, resp_headers)
        raise AssertionError("unreachable")

    async def _send(
        self, method: str, url: str, json_body: Any, headers: Mapping[str, str] | None
    ) -> tuple[int, Any, str, Mapping[str, str]]:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self._client().request(
                method, url, json=json_body, headers=dict(headers or {}), timeout=timeout
            ) as resp:
                raw = await resp.text(errors="replace")
                return resp.status, _json_or_none(raw), raw, dict(resp.headers)
        except TimeoutError as exc:
            raise RetryableError(f"no answer within {self.timeout_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"connection failed ({type(exc).__name__}: {exc})") from exc

    def _raise_for(self, status: int, data: Any, message: str, headers: Mapping[str, str]) -> None:
        if status in (401, 403):
            raise ProviderAuthError(
                f"{self.provider} rejected the credentials (HTTP {status}): {message}",
                details={"provider": self.provider, "status": status},
            )
        if status == 429 and error_code(data) == "insufficient_quota":
            raise ProviderError(
                f"{self.provider}: account quota exhausted (HTTP 429): {message}",
                details={"provider": self.provider, "status": status},
            )
        if status in (408, 409, 425, 429) or status >= 500:
            raise RetryableError(f"HTTP {status}: {message}", retry_after=parse_retry_after(headers))
        raise ProviderRejected(
            f"{self.provider} rejected the request (HTTP {status}): {message}",
            status=status,
            details={"provider": self.provider, "status": status},
        )


def _json_or_none(raw: str) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Prices

# USD per 1M tokens (input, output), from the providers' public price lists. Matched by longest
# prefix, so dated snapshots ("gpt-4o-mini-2024-07-18") and router prefixes ("openai/...") resolve.
# A model not listed costs 0: local servers are free and an unknown price must not block work; the
# token counts are still recorded so cost can be recomputed once the price is known.
MODEL_PRICES_PER_MTOK: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1-nano": (Decimal("0.10"), Decimal("0.40")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "gpt-5-nano": (Decimal("0.05"), Decimal("0.40")),
    "gpt-5-mini": (Decimal("0.25"), Decimal("2.00")),
    "gpt-5": (Decimal("1.25"), Decimal("10.00")),
    "o4-mini": (Decimal("1.10"), Decimal("4.40")),
    "o3-mini": (Decimal("1.10"), Decimal("4.40")),
    "gpt-3.5-turbo": (Decimal("0.50"), Decimal("1.50")),
}
_MTOK = Decimal(1_000_000)


def lookup_price(model: str, table: Mapping[str, tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal] | None:
    name = model.rsplit("/", 1)[-1].lower()
    best = max((key for key in table if name.startswith(key)), key=len, default=None)
    return table[best] if best else None


def chat_cost(
    model: str,
    input_tokens: int,
    output_tokens: int,
    table: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> Decimal:
    price = lookup_price(model, MODEL_PRICES_PER_MTOK if table is None else table)
    if price is None:
        return Decimal(0)
    return (price[0] * input_tokens + price[1] * output_tokens) / _MTOK


# --------------------------------------------------------------------------------------------------
# JSON in, JSON out

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in a model reply: the whole text, a ```json fence, or the first ``{...}``
    that parses inside prose. Raises ``ValueError`` saying what was wrong, for feedback to the model."""
    cleaned = _THINK.sub("", text).strip().lstrip("\ufeff")
    if not cleaned:
        raise ValueError("the reply was empty")
    first_error: str | None = None
    candidates = [cleaned, *(m.group(1).strip() for m in _FENCE.finditer(cleaned))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError as exc:
            if candidate.startswith("{"):
                # Meant to be one object but broken (often truncated): report that, rather than
                # returning some inner object that happens to parse.
                raise ValueError(f"invalid JSON ({exc})") from None
            continue
        if isinstance(value, dict):
            return value
        first_error = first_error or f"expected a JSON object, got {type(value).__name__}"
    found = _scan_for_object(cleaned)
    if found is not None:
        return found
    if "{" not in cleaned:
        raise ValueError("no JSON object found in the reply")
    raise ValueError(first_error or "no complete JSON object found in the reply")


def _scan_for_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def strict_json_schema(model: type[BaseModel]) -> tuple[dict[str, Any], bool]:
    """The model's JSON Schema rewritten for OpenAI strict mode, and whether strict is possible.

    Strict mode wants every object closed (``additionalProperties: false``) with every property
    listed in ``required``, and no ``default``. Pydantic still validates the reply, so listing an
    optional field as required only obliges the model to write it out. Free-form mappings
    (``dict[str, X]``) cannot be expressed strictly; then the schema is sent with ``strict: false``.
    """
    schema = model.model_json_schema()
    return schema, _make_strict(schema)


def _make_strict(node: Any) -> bool:
    if isinstance(node, list):
        return all([_make_strict(item) for item in node])
    if not isinstance(node, dict):
        return True
    ok = True
    node.pop("default", None)
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        if extra not in (None, False):
            ok = False
        else:
            node["additionalProperties"] = False
            node["required"] = list(node.get("properties", {}))
    for key, value in node.items():
        if (key == "properties" and isinstance(value, dict)) or (key == "$defs" and isinstance(value, dict)):
            ok = all([_make_strict(v) for v in value.values()]) and ok
        elif key in ("items", "anyOf", "allOf", "oneOf", "prefixItems", "additionalProperties", "not"):
            ok = _make_strict(value) and ok
    return ok


def _schema_name(model: type[BaseModel]) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", model.__name__)[:64] or "output"


def _validation_summary(exc: ValidationError, limit: int = 6) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


_FORMAT_WORDS = ("response_format", "response format", "json_schema", "json schema", "json_object")


def _is_schema_complaint(message: str) -> bool:
    """OpenAI's wording when one schema breaks strict-mode rules ("Invalid schema for
    response_format 'X': ...") as opposed to the server not supporting json_schema at all."""
    return "invalid schema" in message.lower()


def _mentions_response_format(message: str) -> bool:
    text = message.lower()
    return any(k in text for k in _FORMAT_WORDS)


# --------------------------------------------------------------------------------------------------
# What each server accepts, learned from its refusals (per process)

_FORMAT_MEMORY: dict[str, ResponseFormatMode] = {}


@dataclass
class _ModelQuirks:
    max_tokens_param: str = "max_tokens"
    send_temperature: bool = True


_QUIRKS: dict[tuple[str, str], _ModelQuirks] = {}


def forget_server_quirks() -> None:
    """Forget every learned degradation (tests; or after a server upgrade without a restart)."""
    _FORMAT_MEMORY.clear()
    _QUIRKS.clear()


def _adapt_to_rejection(quirks: _ModelQuirks, message: str) -> bool:
    """Change the request so the refusal in ``message`` does not repeat; False if nothing applies."""
    text = message.lower()
    if "max_completion_tokens" in text and quirks.max_tokens_param == "max_tokens":
        quirks.max_tokens_param = "max_completion_tokens"
        return True
    if "temperature" in text and quirks.send_temperature and ("support" in text or "unsupported" in text):
        quirks.send_temperature = False
        return True
    return False


# --------------------------------------------------------------------------------------------------
# The chat client


@dataclass
class ChatReply:
    """One completion, normalised: ``content`` is always a string (``""`` when the server sent null)."""

    content: str
    finish_reason: str | None
    usage: Usage
    model: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to a conversation; never with ``content: null``."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


def _usage_tokens(data: Any) -> int | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def _normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copy messages, turning ``content: None`` into ``""`` — several servers (llama.cpp, vLLM
    templates) fail on null content in assistant turns, which OpenAI itself produces with tool calls."""
    out = []
    for message in messages:
        copy = dict(message)
        if copy.get("content") is None:
            copy["content"] = ""
        out.append(copy)
    return out


def estimate_tokens(messages: Sequence[Mapping[str, Any]], max_tokens: int, extra_chars: int = 0) -> int:
    """Upper-ish bound for the rate limiter: ~4 characters per token plus the full output budget.
    Settled with the real count from ``usage`` once the reply arrives."""
    chars = sum(len(str(m.get("content") or "")) for m in messages) + extra_chars
    return chars // 4 + 4 * len(messages) + max_tokens


def llm_limiter(settings: Any = None) -> RateLimiter:
    """The process-wide "llm" limiter with the ``IGNY8_LLM_RPM/TPM/MAX_CONCURRENCY`` budgets. Pass it
    to every chat client so they share one budget per account."""
    if settings is None:
        from storage.settings import get_settings

        settings = get_settings()
    limits = RateLimits(
        rpm=settings.llm_rpm, tpm=settings.llm_tpm, max_concurrency=settings.llm_max_concurrency
    )
    return shared_limiter("llm", limits)


class TransportClient:
    """Lifecycle shared by every HTTP provider: closing it closes its transport; usable as
    ``async with``."""

    transport: JsonTransport

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class OpenAICompatibleChat(TransportClient):
    """:class:`~tools.ai.providers.base.ChatProvider` for any server speaking ``/chat/completions``."""

    name = "openai_compat"

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        response_format: ResponseFormatMode = "json_schema",
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 120.0,
        max_output_retries: int = 2,
        prices: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.response_format: ResponseFormatMode = response_format
        self.max_output_retries = max_output_retries
        self.prices = prices
        self._api_key = api_key or None
        self.transport = JsonTransport(
            provider=self.name,
            secret=api_key,
            retry=retry,
            timeout_s=timeout_s,
            limiter=limiter,
            session=session,
        )

    @classmethod
    def from_settings(
        cls, settings: Any = None, *, limiter: RateLimiter | None = None
    ) -> OpenAICompatibleChat:
        """Build from ``IGNY8_LLM_*`` settings, sharing the process-wide "llm" limiter."""
        if settings is None:
            from storage.settings import get_settings

            settings = get_settings()
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            base_url=settings.llm_base_url or DEFAULT_BASE_URL,
            api_key=key,
            model=settings.llm_model or DEFAULT_MODEL,
            response_format=settings.llm_response_format,
            limiter=limiter or llm_limiter(settings),
            retry=RetryPolicy(max_retries=settings.llm_max_retries),
            timeout_s=settings.llm_timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleChat(base_url={self.base_url!r}, model={self.model!r})"

    # -- raw completions ---------------------------------------------------------------------------

    async def complete(
        self,
        *,
        account_id: int | str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int = 4000,
        temperature: float | None = 0.7,
        response_format: Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        extra: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> ChatReply:
        """One non-streaming completion (with retries), adapting to parameters the model refuses.

        Public so the agent loop can use tool calls through the same retry/limit/redaction policy.
        """
        model = model or self.model
        quirks = _QUIRKS.setdefault((self.base_url, model), _ModelQuirks())
        msgs = _normalise_messages(messages)
        fmt_chars = len(json.dumps(response_format)) if response_format else 0
        for _ in range(3):
            body = self._body(model, msgs, max_tokens, temperature, response_format, tools, extra, quirks)
            try:
                reply = await self.transport.request(
                    "POST",
                    f"{self.base_url}/chat/completions",
                    account_id=account_id,
                    json_body=body,
                    headers=self._headers(),
                    est_tokens=estimate_tokens(msgs, max_tokens, fmt_chars),
                    tokens_used=_usage_tokens,
                    screen=_format_screen if response_format else None,
                )
            except ProviderRejected as exc:
                if _adapt_to_rejection(quirks, exc.message):
                    logger.info("%s: adapting request for %s: %s", self.name, model, exc.message[:200])
                    continue
                raise
            return self._parse_reply(reply.data, model)
        raise ProviderError(f"{self.name}: {model} kept refusing the request parameters")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    @staticmethod
    def _body(
        model: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        temperature: float | None,
        response_format: Mapping[str, Any] | None,
        tools: Sequence[Mapping[str, Any]] | None,
        extra: Mapping[str, Any] | None,
        quirks: _ModelQuirks,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": messages, quirks.max_tokens_param: max_tokens}
        if temperature is not None and quirks.send_temperature:
            body["temperature"] = temperature
        if response_format:
            body["response_format"] = dict(response_format)
        if tools:
            body["tools"] = list(tools)
        body.update(extra or {})
        return body

    def _parse_reply(self, data: dict[str, Any], model: str) -> ChatReply:
        choices = data.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        usage_raw = data.get("usage") or {}
        served_by = str(data.get("model") or model)
        prompt_tokens = int(usage_raw.get("prompt_tokens") or 0)
        completion_tokens = int(usage_raw.get("completion_tokens") or 0)
        usage = Usage(
            model=served_by,
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            cost_usd=chat_cost(served_by, prompt_tokens, completion_tokens, self.prices),
            requests=1,
        )
        content = message.get("content")
        return ChatReply(
            content=content if isinstance(content, str) else "",
            finish_reason=choice.get("finish_reason"),
            usage=usage,
            model=served_by,
            tool_calls=list(message.get("tool_calls") or []),
            refusal=message.get("refusal"),
            raw=data,
        )

    # -- structured output -------------------------------------------------------------------------

    def current_mode(self) -> ResponseFormatMode:
        """The configured mode, or the weaker one this base URL has already been found to need."""
        learned = _FORMAT_MEMORY.get(self.base_url, self.response_format)
        return max(self.response_format, learned, key=MODES.index)

    def _degrade(self, mode: ResponseFormatMode, reason: str) -> None:
        weaker = MODES[MODES.index(mode) + 1]
        logger.warning(
            "%s: %s refused response_format %s; using %s: %s",
            self.name,
            self.base_url,
            mode,
            weaker,
            reason[:200],
        )
        _FORMAT_MEMORY[self.base_url] = max(
            weaker, _FORMAT_MEMORY.get(self.base_url, weaker), key=MODES.index
        )

    async def structured(
        self,
        *,
        account_id: int,
        system: str,
        prompt: str,
        schema: type[OutT],
        max_tokens: int = 4000,
        temperature: float = 0.7,
    ) -> ChatResult[OutT]:
        plan = _StructuredPlan(schema, system, prompt)
        total = Usage(model=self.model)
        problems: list[str] = []
        feedback: list[dict[str, Any]] = []
        while len(problems) <= self.max_output_retries:
            mode = max(self.current_mode(), plan.floor, key=MODES.index)
            try:
                reply = await self.complete(
                    account_id=account_id,
                    messages=plan.messages(mode) + feedback,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    response_format=plan.response_format(mode),
                )
            except ProviderRejected as exc:
                if mode == "json_schema" and _is_schema_complaint(exc.message):
                    plan.relax(exc.message)  # this schema, not the server, is the problem
                    continue
                if mode != "text" and _mentions_response_format(exc.message):
                    self._degrade(mode, exc.message)
                    continue
                _with_usage(exc, total)
                raise
            except ProviderError as exc:
                _with_usage(exc, total)
                raise
            total += reply.usage
            output, problem = _interpret(reply, schema, max_tokens)
            if output is not None:
                return ChatResult(output=output, usage=total, raw_text=reply.content)
            problems.append(problem)
            feedback = _feedback(reply, problem)
            logger.info("%s: unusable output for %s: %s", self.name, schema.__name__, problem[:300])
        raise _with_usage(
            OutputInvalid(
                f"model output did not match {schema.__name__} "
                f"after {len(problems)} attempts: {problems[-1]}",
                details={"schema": schema.__name__, "problems": problems},
            ),
            total,
        )


def _with_usage(exc: ProviderError, usage: Usage) -> ProviderError:
    if usage.requests and exc.usage is None:
        exc.usage = usage
    return exc


def _format_screen(status: int, data: Any, message: str) -> None:
    """llama.cpp (and forks) answer an unsupported ``response_format`` with HTTP 500; retrying that
    would only burn the retry budget, so reclassify it as a rejection the degrade logic handles."""
    if status >= 500 and _mentions_response_format(message):
        raise ProviderRejected(f"server refused response_format (HTTP {status}): {message}", status=status)


class _StructuredPlan:
    """Messages and ``response_format`` for one schema, in each mode."""

    def __init__(self, schema: type[BaseModel], system: str, prompt: str) -> None:
        self.schema = schema
        self.system = system
        self.prompt = prompt
        self.strict_schema, self.strict = strict_json_schema(schema)
        self.floor: ResponseFormatMode = "json_schema"

    def relax(self, reason: str) -> None:
        """The server supports json_schema but refused this schema: try it non-strict, then fall back
        to json_object for this call only (the server's capability is not downgraded for others)."""
        logger.warning("schema %s refused (%s); relaxing", self.schema.__name__, reason[:200])
        if self.strict:
            self.strict = False
        else:
            self.floor = "json_object"

    def response_format(self, mode: ResponseFormatMode) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(self.schema),
                    "schema": self.strict_schema,
                    "strict": self.strict,
                },
            }
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def messages(self, mode: ResponseFormatMode) -> list[dict[str, Any]]:
        system = self.system
        if mode != "json_schema":
            # Without a server-side schema the model must be told the shape; json_object mode also
            # requires the word "JSON" to appear in the messages (OpenAI rejects the call otherwise).
            system = (
                f"{system}\n\nRespond with only a JSON object (no prose, no markdown fences) that "
                f"validates against this JSON Schema:\n{json.dumps(self.schema.model_json_schema())}"
            ).strip()
        return [{"role": "system", "content": system}, {"role": "user", "content": self.prompt}]


def _interpret(reply: ChatReply, schema: type[OutT], max_tokens: int) -> tuple[OutT | None, str]:
    """The validated output, or ``(None, what was wrong)`` in words the model can act on."""
    if reply.finish_reason == "length":
        return None, f"the output was cut off at the {max_tokens}-token limit (finish_reason=length)"
    if reply.refusal:
        return None, f"the model refused: {reply.refusal[:300]}"
    try:
        data = extract_json(reply.content)
    except ValueError as exc:
        return None, str(exc)
    try:
        return schema.model_validate(data), ""
    except ValidationError as exc:
        return None, f"schema validation failed: {_validation_summary(exc)}"


def _feedback(reply: ChatReply, problem: str) -> list[dict[str, Any]]:
    """Messages appended to the next attempt. Only the latest failure is kept, so the prompt does
    not grow with every retry; a truncated reply is not echoed back (it would only eat the budget)."""
    if reply.finish_reason == "length":
        note = "Your previous answer was cut off because it was too long. Answer again, more concisely."
        return [{"role": "user", "content": note}]
    return [
        {"role": "assistant", "content": reply.content[:8000]},
        {
            "role": "user",
            "content": f"That reply could not be used: {problem}. "
            "Reply again with only the corrected JSON object.",
        },
    ]


# --------------------------------------------------------------------------------------------------
# Connection test


@dataclass(frozen=True)
class ConnectionCheck:
    """What a "test connection" button shows: which model answered and how fast."""

    model: str
    latency_ms: int
    detail: str = ""


async def test_connection(
    *,
    base_url: str = DEFAULT_BASE_URL,
    api_key: str | None,
    model: str = DEFAULT_MODEL,
    timeout_s: float = 30.0,
) -> ConnectionCheck:
    """One tiny completion with no retries. Raises ``ProviderAuthError`` / ``ProviderError`` with a
    message fit to show the user (the key scrubbed) when the server cannot be used."""
    chat = OpenAICompatibleChat(
        base_url=base_url,
        api_key=api_key,
        model=model,
        retry=RetryPolicy(max_retries=0),
        timeout_s=timeout_s,
    )
    async with chat:
        started = time.monotonic()
        reply = await chat.complete(
            account_id="connection-test",
            messages=[{"role": "user", "content": "Reply with the single word OK."}],
            max_tokens=16,
            temperature=None,
        )
        latency_ms = round((time.monotonic() - started) * 1000)
    return ConnectionCheck(model=reply.model, latency_ms=latency_ms, detail=reply.content.strip()[:100])


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name
