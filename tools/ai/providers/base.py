"""What every provider offers the AI engine, and the errors it may raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from storage.exceptions import Igny8Error

OutT = TypeVar("OutT", bound=BaseModel)


@dataclass
class Usage:
    """Tokens and money one call consumed; summed into the CreditUsageLog."""

    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = field(default_factory=lambda: Decimal(0))
    requests: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.model = other.model or self.model
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.requests += other.requests
        return self


@dataclass
class ChatResult(Generic[OutT]):
    output: OutT
    usage: Usage
    raw_text: str = ""


@dataclass
class GeneratedImage:
    """Either the bytes of the picture or a URL to fetch them from."""

    data: bytes | None
    url: str | None
    mime_type: str
    usage: Usage


class ChatProvider(Protocol):
    name: str

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
        """Ask for output matching ``schema``; parsed and validated, or an error is raised."""
        ...


class ImageProvider(Protocol):
    name: str

    async def generate(
        self, *, account_id: int, prompt: str, width: int, height: int, model: str | None = None
    ) -> GeneratedImage: ...


class ProviderError(Igny8Error):
    """The model service failed in a way retrying did not fix.

    ``usage`` carries what the failed call still consumed (tokens of rejected attempts), so the
    engine can bill or log it; ``None`` when nothing reached the model.
    """

    code = "ai_provider_error"
    http_status = 502
    usage: Usage | None = None


class ProviderAuthError(ProviderError):
    code = "ai_provider_auth"


class ProviderRejected(ProviderError):
    """The service refused this request (a 4xx other than auth or rate limit): resending it unchanged
    cannot help, so it is never retried. ``status`` is the HTTP status."""

    code = "ai_provider_rejected"

    def __init__(self, message: str, *, status: int, details: object = None) -> None:
        super().__init__(message, details=details)
        self.status = status


class OutputInvalid(ProviderError):
    """The model answered, but not with output matching the schema (after retries)."""

    code = "ai_output_invalid"


class RetryableError(Exception):
    """Internal: a transient failure (429, 5xx, timeout, truncated JSON) worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
