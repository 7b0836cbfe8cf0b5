"""Image generation over the OpenAI Images API and Runware's HTTP task API.

Both go through :class:`~tools.ai.providers.openai_compat.JsonTransport`, so they share the chat
client's retry/backoff, ``Retry-After`` handling, per-account rate limiting and key redaction.

Sizes: the ``ImageProvider`` interface asks for any width x height, but the services accept only
some. OpenAI models get the supported size closest in aspect ratio (then area); Runware gets
multiples of 64 within 128-2048. The returned image may therefore differ slightly from the ask.
"""

from __future__ import annotations

import base64
import binascii
import math
import mimetypes
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlparse

import aiohttp

from tools.ai.providers.base import (
    GeneratedImage,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    RetryableError,
    Usage,
)
from tools.ai.providers.openai_compat import (
    DEFAULT_BASE_URL,
    ConnectionCheck,
    JsonTransport,
    RetryPolicy,
    TransportClient,
    error_message,
    lookup_price,
)
from tools.ai.ratelimit import RateLimiter, RateLimits, shared_limiter

__all__ = [
    "OpenAIImages",
    "RunwareImages",
    "image_limiter",
    "snap_openai_size",
    "snap_runware_side",
    "test_openai_images_connection",
    "test_runware_connection",
]

RUNWARE_BASE_URL = "https://api.runware.ai/v1"

# --------------------------------------------------------------------------------------------------
# Shared helpers


def sniff_mime(data: bytes, fallback: str = "image/png") -> str:
    """The image type from its magic bytes; services do not always say which format they sent."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return fallback


def _mime_from_url(url: str, fallback: str) -> str:
    guessed, _ = mimetypes.guess_type(urlparse(url).path)
    return guessed if guessed and guessed.startswith("image/") else fallback


def _decode_b64(value: str, provider: str) -> bytes:
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError(f"{provider}: the image data was not valid base64") from exc


def image_limiter(settings: Any = None) -> RateLimiter:
    """The process-wide "images" limiter (``IGNY8_IMAGE_RPM`` / ``IGNY8_IMAGE_MAX_CONCURRENCY``)."""
    if settings is None:
        from storage.settings import get_settings

        settings = get_settings()
    return shared_limiter(
        "images", RateLimits(rpm=settings.image_rpm, max_concurrency=settings.image_max_concurrency)
    )


# --------------------------------------------------------------------------------------------------
# OpenAI Images

_OPENAI_SIZES: dict[str, tuple[str, ...]] = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536"),
}

# USD per image for the per-image-priced models: (model, quality, size).
OPENAI_IMAGE_PRICES: dict[tuple[str, str, str], Decimal] = {
    ("dall-e-3", "standard", "1024x1024"): Decimal("0.040"),
    ("dall-e-3", "standard", "1792x1024"): Decimal("0.080"),
    ("dall-e-3", "standard", "1024x1792"): Decimal("0.080"),
    ("dall-e-3", "hd", "1024x1024"): Decimal("0.080"),
    ("dall-e-3", "hd", "1792x1024"): Decimal("0.120"),
    ("dall-e-3", "hd", "1024x1792"): Decimal("0.120"),
    ("dall-e-2", "standard", "256x256"): Decimal("0.016"),
    ("dall-e-2", "standard", "512x512"): Decimal("0.018"),
    ("dall-e-2", "standard", "1024x1024"): Decimal("0.020"),
}
# USD per 1M tokens (text input, image output) for the token-priced models; matched by longest prefix.
OPENAI_IMAGE_TOKEN_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-image-1-mini": (Decimal("2.00"), Decimal("8.00")),
    "gpt-image-1": (Decimal("5.00"), Decimal("40.00")),
}


def snap_openai_size(model: str, width: int, height: int) -> str:
    """The supported size nearest in aspect ratio, then in area; ``WxH`` as asked for unknown models."""
    family = max((k for k in _OPENAI_SIZES if model.startswith(k)), key=len, default=None)
    if family is None:
        return f"{width}x{height}"
    want_ratio = math.log(max(width, 1) / max(height, 1))
    want_area = width * height

    def distance(size: str) -> tuple[float, int]:
        w, h = (int(v) for v in size.split("x"))
        return round(abs(math.log(w / h) - want_ratio), 6), abs(w * h - want_area)

    return min(_OPENAI_SIZES[family], key=distance)


def _is_gpt_image(model: str) -> bool:
    return model.startswith("gpt-image")


class OpenAIImages(TransportClient):
    """:class:`~tools.ai.providers.base.ImageProvider` over ``POST {base_url}/images/generations``.

    ``response_format`` is sent only to DALL·E models: the gpt-image models always return base64
    and reject the parameter.
    """

    name = "openai_images"

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None,
        model: str = "dall-e-3",
        response_format: Literal["b64_json", "url"] = "b64_json",
        quality: str | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 180.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.response_format = response_format
        self.quality = quality
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
    def from_settings(cls, settings: Any = None, *, model: str = "dall-e-3") -> OpenAIImages:
        """Use the LLM endpoint and key (OpenAI itself serves both); rate-limited by the "images" budget."""
        if settings is None:
            from storage.settings import get_settings

            settings = get_settings()
        return cls(
            base_url=settings.llm_base_url or DEFAULT_BASE_URL,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            model=model,
            limiter=image_limiter(settings),
            retry=RetryPolicy(max_retries=settings.llm_max_retries),
            timeout_s=settings.image_timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAIImages(base_url={self.base_url!r}, model={self.model!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, model: str, prompt: str, size: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1, "size": size}
        if not _is_gpt_image(model):
            body["response_format"] = self.response_format
        if self.quality:
            body["quality"] = self.quality
        return body

    async def generate(
        self, *, account_id: int, prompt: str, width: int, height: int, model: str | None = None
    ) -> GeneratedImage:
        model = model or self.model
        size = snap_openai_size(model, width, height)
        reply = await self.transport.request(
            "POST",
            f"{self.base_url}/images/generations",
            account_id=account_id,
            json_body=self._body(model, prompt, size),
            headers=self._headers(),
        )
        return self._image(reply.data, model, size)

    def _image(self, data: Any, model: str, size: str) -> GeneratedImage:
        items = data.get("data") if isinstance(data, dict) else None
        if not items or not isinstance(items[0], dict):
            raise ProviderError(f"{self.name}: the response contained no image")
        item = items[0]
        usage = self._usage(data, model, size)
        if item.get("b64_json"):
            raw = _decode_b64(item["b64_json"], self.name)
            fallback = f"image/{data.get('output_format', 'png')}".replace("jpg", "jpeg")
            return GeneratedImage(data=raw, url=None, mime_type=sniff_mime(raw, fallback), usage=usage)
        if item.get("url"):
            url = str(item["url"])
            return GeneratedImage(data=None, url=url, mime_type=_mime_from_url(url, "image/png"), usage=usage)
        raise ProviderError(f"{self.name}: the response had neither b64_json nor url")

    def _usage(self, data: dict[str, Any], model: str, size: str) -> Usage:
        tokens = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        input_tokens = int(tokens.get("input_tokens") or 0)
        output_tokens = int(tokens.get("output_tokens") or 0)
        token_price = lookup_price(model, OPENAI_IMAGE_TOKEN_PRICES)
        if token_price is not None:
            cost = (token_price[0] * input_tokens + token_price[1] * output_tokens) / Decimal(1_000_000)
        else:
            family = "dall-e-3" if model.startswith("dall-e-3") else model
            cost = OPENAI_IMAGE_PRICES.get((family, self.quality or "standard", size), Decimal(0))
        return Usage(
            model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost, requests=1
        )


async def test_openai_images_connection(
    *, base_url: str = DEFAULT_BASE_URL, api_key: str | None, model: str = "dall-e-3", timeout_s: float = 30.0
) -> ConnectionCheck:
    """``GET /models``: proves the key works without paying for an image. ``detail`` says whether
    ``model`` is listed (compatible servers often list only some models, so absence is not an error)."""
    transport = JsonTransport(
        provider=OpenAIImages.name, secret=api_key, retry=RetryPolicy(max_retries=0), timeout_s=timeout_s
    )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        started = time.monotonic()
        reply = await transport.request(
            "GET", f"{base_url.rstrip('/')}/models", account_id="connection-test", headers=headers
        )
        latency_ms = round((time.monotonic() - started) * 1000)
    finally:
        await transport.aclose()
    listed = {str(m.get("id")) for m in reply.data.get("data", []) if isinstance(m, dict)}
    detail = "model listed" if model in listed else f"model not listed ({len(listed)} models available)"
    return ConnectionCheck(model=model, latency_ms=latency_ms, detail=detail)


test_openai_images_connection.__test__ = False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# Runware


def snap_runware_side(value: int) -> int:
    """Runware wants each side a multiple of 64 within 128-2048."""
    return min(2048, max(128, round(value / 64) * 64))


_RUNWARE_RETRYABLE_HINTS = ("timeout", "ratelimit", "toomanyrequests", "internal", "unavailable", "overload")


def _runware_screen(status: int, data: Any, message: str) -> None:
    """Classify Runware's ``{"errors": [...]}`` bodies, which may come with HTTP 200 as well as 4xx."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not errors:
        return
    codes = [str(e.get("code") or "").lower() for e in errors if isinstance(e, dict)]
    if any("apikey" in c or "auth" in c for c in codes):
        raise ProviderAuthError(f"runware rejected the credentials: {message}", details={"status": status})
    if status == 429 or status >= 500:
        return  # the transport retries these, honouring Retry-After
    if any(hint in c for c in codes for hint in _RUNWARE_RETRYABLE_HINTS):
        raise RetryableError(f"runware: {message}")
    if 200 <= status < 300:
        raise ProviderRejected(f"runware rejected the task: {message}", status=status)


class RunwareImages(TransportClient):
    """:class:`~tools.ai.providers.base.ImageProvider` over Runware's HTTP task API.

    One ``POST`` carries a JSON array: an ``authentication`` task with the key, then one
    ``imageInference`` task identified by a fresh ``taskUUID``; the result is matched by that UUID.
    ``includeCost`` is set so the real charge lands in ``Usage.cost_usd``.
    """

    name = "runware"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = RUNWARE_BASE_URL,
        model: str = "runware:100@1",
        output_type: Literal["URL", "base64Data"] = "URL",
        output_format: Literal["WEBP", "PNG", "JPG"] = "WEBP",
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 180.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.output_type = output_type
        self.output_format = output_format
        self._api_key = api_key
        self.transport = JsonTransport(
            provider=self.name,
            secret=api_key,
            retry=retry,
            timeout_s=timeout_s,
            limiter=limiter,
            session=session,
        )

    @classmethod
    def from_settings(cls, settings: Any = None, *, model: str = "runware:100@1") -> RunwareImages:
        if settings is None:
            from storage.settings import get_settings

            settings = get_settings()
        if settings.runware_api_key is None:
            raise ProviderAuthError("IGNY8_RUNWARE_API_KEY is not set")
        return cls(
            api_key=settings.runware_api_key.get_secret_value(),
            base_url=settings.runware_base_url,
            model=model,
            limiter=image_limiter(settings),
            retry=RetryPolicy(max_retries=settings.llm_max_retries),
            timeout_s=settings.image_timeout_s,
        )

    def __repr__(self) -> str:
        return f"RunwareImages(base_url={self.base_url!r}, model={self.model!r})"

    def _auth_task(self) -> dict[str, Any]:
        return {"taskType": "authentication", "apiKey": self._api_key}

    def _inference_task(
        self, task_uuid: str, prompt: str, width: int, height: int, model: str
    ) -> dict[str, Any]:
        return {
            "taskType": "imageInference",
            "taskUUID": task_uuid,
            "positivePrompt": prompt.strip()[:3000],
            "model": model,
            "width": snap_runware_side(width),
            "height": snap_runware_side(height),
            "numberResults": 1,
            "outputType": self.output_type,
            "outputFormat": self.output_format,
            "includeCost": True,
        }

    async def _post(self, account_id: int | str, tasks: list[dict[str, Any]]) -> Any:
        reply = await self.transport.request(
            "POST",
            self.base_url,
            account_id=account_id,
            json_body=tasks,
            headers={"Content-Type": "application/json"},
            screen=_runware_screen,
        )
        return reply.data

    async def generate(
        self, *, account_id: int, prompt: str, width: int, height: int, model: str | None = None
    ) -> GeneratedImage:
        model = model or self.model
        task_uuid = str(uuid.uuid4())
        task = self._inference_task(task_uuid, prompt, width, height, model)
        data = await self._post(account_id, [self._auth_task(), task])
        return self._image(data, task_uuid, model)

    def _image(self, data: Any, task_uuid: str, model: str) -> GeneratedImage:
        items = data.get("data") if isinstance(data, dict) else None
        result = next(
            (
                item
                for item in items or []
                if isinstance(item, dict)
                and item.get("taskType") == "imageInference"
                and item.get("taskUUID") == task_uuid
            ),
            None,
        )
        if result is None:
            raise ProviderError(f"runware: no imageInference result for task {task_uuid}")
        usage = Usage(model=model, cost_usd=_decimal(result.get("cost")), requests=1)
        fallback = {"WEBP": "image/webp", "PNG": "image/png", "JPG": "image/jpeg"}[self.output_format]
        encoded = result.get("imageBase64Data") or result.get("imageDataURI")
        if encoded:
            raw = _decode_b64(str(encoded), self.name)
            return GeneratedImage(data=raw, url=None, mime_type=sniff_mime(raw, fallback), usage=usage)
        if result.get("imageURL"):
            url = str(result["imageURL"])
            return GeneratedImage(data=None, url=url, mime_type=_mime_from_url(url, fallback), usage=usage)
        raise ProviderError(f"runware: result for task {task_uuid} carried no image")

    async def check_connection(self) -> ConnectionCheck:
        """Send only the authentication task: validates the key without generating (or paying for)
        an image."""
        started = time.monotonic()
        data = await self._post("connection-test", [self._auth_task()])
        latency_ms = round((time.monotonic() - started) * 1000)
        items = data.get("data") if isinstance(data, dict) else None
        if not any(isinstance(i, dict) and i.get("taskType") == "authentication" for i in items or []):
            raise ProviderError(f"runware: unexpected answer to authentication: {error_message(data, '')}")
        return ConnectionCheck(model=self.model, latency_ms=latency_ms, detail="authenticated")


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except (InvalidOperation, ValueError):
        return Decimal(0)


async def test_runware_connection(
    *, api_key: str, base_url: str = RUNWARE_BASE_URL, model: str = "runware:100@1", timeout_s: float = 30.0
) -> ConnectionCheck:
    """Authenticate once, no retries. Raises ``ProviderAuthError`` for a bad key."""
    client = RunwareImages(
        api_key=api_key, base_url=base_url, model=model, retry=RetryPolicy(max_retries=0), timeout_s=timeout_s
    )
    async with client:
        return await client.check_connection()


test_runware_connection.__test__ = False  # type: ignore[attr-defined]
