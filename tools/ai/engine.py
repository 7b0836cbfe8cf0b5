"""The AI engine (the seed's AIEngine / run_ai_task): every AI function, the same phases.

validate → prepare → build prompt → call provider → parse/validate → save, with a progress event at
each phase and per item. Credits are reserved before the first call and settled after the last: an
item that fails is not charged, and a run that dies refunds what it had not used. The database is
never held in a transaction across a model call.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import Igny8Error, ValidationFailed
from storage.settings import get_settings
from tools import billing, telemetry
from tools.ai.prompts import PromptSet, load_prompt_set
from tools.ai.providers.base import ChatProvider, ImageProvider, Usage
from tools.ai.providers.select import ProviderSet, providers_for
from tools.registry import ActionContext, ActionInput

ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT", bound=BaseModel)


class AIInput(ActionInput):
    operation_key: str | None = Field(
        None, max_length=100, description="Idempotency key: retrying with the same key charges once"
    )


@dataclass
class Saved:
    """What saving one item produced, and what it actually used (for settling credits)."""

    ref: dict[str, Any]
    units: int
    usage_details: dict[str, int] = field(default_factory=dict)


class ItemFailure(BaseModel):
    item: str
    code: str
    message: str


class AIRunResult(BaseModel):
    function: str
    provider: str
    succeeded: list[dict[str, Any]]
    failed: list[ItemFailure]
    credits_reserved: int
    credits_used: int
    input_tokens: int
    output_tokens: int


@dataclass
class RunContext:
    """What one AI function may use while it runs."""

    action: ActionContext
    providers: ProviderSet
    prompts: PromptSet

    @property
    def offline(self) -> bool:
        return self.providers.chat is None

    @property
    def chat(self) -> ChatProvider:
        assert self.providers.chat is not None
        return self.providers.chat

    @property
    def images(self) -> ImageProvider | None:
        return self.providers.images


class AIFunction(ABC, Generic[ItemT, OutT]):
    """One AI function; the engine drives it. Items are plain data, safe outside a session."""

    name: ClassVar[str]
    operation: ClassVar[str]
    output_schema: ClassVar[type[BaseModel]]
    max_tokens: ClassVar[int] = 4000
    plan_resource: ClassVar[str | None] = None

    @abstractmethod
    async def prepare(self, session: AsyncSession, params: Any, run: RunContext) -> list[ItemT]:
        """Validate the request against the database and snapshot what each item needs."""

    @abstractmethod
    def units(self, item: ItemT) -> int:
        """Credit units this item is expected to use (reserved up front)."""

    @abstractmethod
    def label(self, item: ItemT) -> str: ...

    @abstractmethod
    def prompt_variables(self, item: ItemT) -> dict[str, object]: ...

    @abstractmethod
    async def offline(self, item: ItemT, run: RunContext) -> OutT:
        """The offline provider's answer: a real algorithm or a clearly labelled template."""

    @abstractmethod
    async def save(self, session: AsyncSession, item: ItemT, output: OutT, run: RunContext) -> Saved: ...

    async def generate(self, item: ItemT, run: RunContext) -> tuple[OutT, Usage]:
        """Ask the model (or the offline provider) for this item's output."""
        if run.offline:
            return await self.offline(item, run), Usage(model="offline")
        await run.action.progress("build_prompt", message=self.label(item))
        system, prompt = run.prompts.render(self.name, self.prompt_variables(item))
        await run.action.progress("call", message=self.label(item))
        result = await run.chat.structured(
            account_id=run.action.tenant.account_id,
            system=system,
            prompt=prompt,
            schema=self.output_schema,
            max_tokens=self.max_tokens,
        )
        return result.output, result.usage  # type: ignore[return-value]


async def run_ai_function(fn: AIFunction[Any, Any], ctx: ActionContext, params: Any) -> AIRunResult:
    await ctx.progress("validate", message=fn.name)
    async with ctx.session.begin():
        providers = await providers_for(ctx.session)
    try:
        return await _run(fn, ctx, params, providers)
    finally:
        await providers.aclose()


async def _run(
    fn: AIFunction[Any, Any], ctx: ActionContext, params: Any, providers: ProviderSet
) -> AIRunResult:
    session = ctx.session
    async with session.begin():
        run = RunContext(ctx, providers, await load_prompt_set(session, getattr(params, "sector_id", None)))
        await ctx.progress("prepare")
        items = await fn.prepare(session, params, run)
        if not items:
            raise ValidationFailed.single("ids", "nothing to process: none of the given ids need this")
        if not run.offline:
            await billing.ensure_within_plan(session, "ai_requests", len(items))
    reserved = sum(billing.credits_for(fn.operation, fn.units(item)) for item in items)
    key = f"{fn.name}:{params.operation_key or uuid.uuid4().hex}"
    async with billing.reserve(
        ctx.db,
        ctx.tenant,
        operation=fn.operation,
        credits=reserved,
        key=key,
        description=f"{fn.name}: {len(items)} item(s)",
    ) as held:
        batch = _Batch(fn, run, held, len(items))
        try:
            async with asyncio.TaskGroup() as group:
                for index, item in enumerate(items):
                    group.create_task(batch.process(index, item))
        except ExceptionGroup as errors:  # an unexpected error: the rest were cancelled, credits settle
            raise errors.exceptions[0] from None
        await ctx.progress(
            "done", len(items), len(items), f"{len(batch.succeeded)} done, {len(batch.failed)} failed"
        )
    if batch.failed and not batch.succeeded:
        raise _RunFailed(fn.name, batch.failed[0], batch.failed)
    return AIRunResult(
        function=fn.name,
        provider=providers.chat_name,
        succeeded=batch.succeeded,
        failed=batch.failed,
        credits_reserved=reserved,
        credits_used=held.used,
        input_tokens=batch.usage.input_tokens,
        output_tokens=batch.usage.output_tokens,
    )


class _Batch:
    """Items call the model concurrently (the provider's rate limiter paces them) and save one at a
    time, because a session serves one statement at a time."""

    def __init__(
        self, fn: AIFunction[Any, Any], run: RunContext, held: billing.Reservation, total: int
    ) -> None:
        self.fn, self.run, self.held, self.total = fn, run, held, total
        self.calls = asyncio.Semaphore(1 if run.offline else get_settings().llm_max_concurrency or 8)
        self.saving = asyncio.Lock()
        self.usage = Usage()
        self.results: dict[int, dict[str, Any] | ItemFailure] = {}

    @property
    def succeeded(self) -> list[dict[str, Any]]:
        return [r for _, r in sorted(self.results.items()) if not isinstance(r, ItemFailure)]

    @property
    def failed(self) -> list[ItemFailure]:
        return [r for _, r in sorted(self.results.items()) if isinstance(r, ItemFailure)]

    async def process(self, index: int, item: Any) -> None:
        ctx, label = self.run.action, self.fn.label(item)
        try:
            async with self.calls:
                await ctx.progress("item", self._done(), self.total, label)
                output, usage = await self._generate(item)
            async with self.saving:
                await ctx.progress("save", self._done(), self.total, label)
                ref = await self._save(item, output, usage)
            self.usage += usage
            self.results[index] = ref
        except Igny8Error as exc:
            self.results[index] = ItemFailure(item=label, code=exc.code, message=exc.message)

    def _done(self) -> int:
        return len(self.results)

    async def _generate(self, item: Any) -> tuple[Any, Usage]:
        try:
            result = await self.fn.generate(item, self.run)
        except Exception:
            telemetry.count_ai_call(self.fn.name, ok=False)
            raise
        telemetry.count_ai_call(self.fn.name, ok=True)
        return result

    async def _save(self, item: Any, output: Any, usage: Usage) -> dict[str, Any]:
        session, fn, held = self.run.action.session, self.fn, self.held
        async with session.begin():
            saved = await fn.save(session, item, output, self.run)
            credits = min(billing.credits_for(fn.operation, saved.units), held.reserved - held.used)
            await billing.log_usage(
                session,
                operation=fn.operation,
                credits=credits,
                model=usage.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
                details={"function": fn.name, **saved.usage_details},
                related=next(iter(saved.ref.items()), None),
            )
        telemetry.count_credits(fn.operation, credits)
        held.use(credits)
        return saved.ref


class _RunFailed(Igny8Error):
    """Nothing succeeded: surface the first item's error, list all, and say nothing was charged."""

    http_status = 502

    def __init__(self, function: str, first: ItemFailure, failed: list[ItemFailure]) -> None:
        self.code = first.code
        super().__init__(
            f"{function} failed for {first.item}: {first.message} (no credits were charged)",
            details={"failed": [f.model_dump() for f in failed]},
        )
