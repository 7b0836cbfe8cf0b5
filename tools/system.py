"""The system module: integration settings (secrets encrypted, never echoed), prompts, author
profiles and strategies."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from storage import secrets
from storage.exceptions import ValidationFailed
from storage.models import AIPrompt, AuthorProfile, IntegrationSettings, Sector, Strategy
from storage.settings import Settings
from tools.ai.offline import OFFLINE_MODEL, placeholder_png
from tools.ai.prompts import PROMPT_VARIABLES, default_prompt, validate_template
from tools.ai.providers.base import GeneratedImage, Usage
from tools.ai.providers.images import test_runware_connection
from tools.ai.providers.openai_compat import DEFAULT_BASE_URL, DEFAULT_MODEL
from tools.ai.providers.openai_compat import test_connection as test_chat_connection
from tools.ai.providers.select import effective_settings, image_provider, integration_configs, llm_configured
from tools.billing import credits_for, deduct, log_usage
from tools.common import (
    BulkResult,
    IdInput,
    ObjectOut,
    Page,
    PageInput,
    apply_changes,
    delete_one,
    get_or_404,
    order_by,
    paginate,
)
from tools.registry import ADMIN_ROLES, ALL_ROLES, ActionContext, ActionInput, NoInput, Route, action

MODULE = "system"
SECRET_FIELDS = frozenset({"api_key", "apikey", "password", "secret", "token", "app_password"})
MASK = "********"


class IntegrationType(StrEnum):
    OPENAI = "openai"
    RUNWARE = "runware"
    IMAGE_GENERATION = "image_generation"


def is_secret(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_FIELDS


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """What callers may see of a stored config: secrets only as 'set'."""
    return {k: MASK if is_secret(k) and v else v for k, v in config.items()}


def decrypted(config: dict[str, Any]) -> dict[str, Any]:
    """The usable config, for providers only; never returned, logged or put into a prompt."""
    return {k: secrets.decrypt(v) if secrets.is_encrypted(v) else v for k, v in config.items()}


def merge_config(stored: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Apply an update: secrets are encrypted; a masked or empty secret keeps the stored one."""
    merged = dict(stored)
    for key, value in incoming.items():
        if is_secret(key):
            if value in (MASK, "", None):
                continue
            if not isinstance(value, str):
                raise ValidationFailed.single(f"config.{key}", "must be a string")
            merged[key] = secrets.encrypt(value)
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# --- integration settings ----------------------------------------------------------------------


class IntegrationOut(BaseModel):
    integration_type: IntegrationType
    config: dict[str, Any] = Field(description="Secrets appear only as '********' when set")
    is_active: bool
    configured: bool


class IntegrationRef(ActionInput):
    integration_type: IntegrationType


class IntegrationSave(IntegrationRef):
    config: dict[str, Any] = Field(description="e.g. {api_key, model, base_url}; '********' keeps a secret")
    is_active: bool = True


async def integration_row(ctx: ActionContext, kind: IntegrationType) -> IntegrationSettings | None:
    return await ctx.session.scalar(
        select(IntegrationSettings).where(IntegrationSettings.integration_type == kind)
    )


def _integration_out(kind: IntegrationType, row: IntegrationSettings | None) -> IntegrationOut:
    return IntegrationOut(
        integration_type=kind,
        config=masked(row.config) if row else {},
        is_active=row.is_active if row else False,
        configured=row is not None,
    )


@action(
    "integrations.get",
    module=MODULE,
    summary="Show an integration's settings (secrets masked)",
    roles=ADMIN_ROLES,
    route=Route("GET", "system/settings/integrations/{integration_type}/"),
)
async def get_integration(ctx: ActionContext, params: IntegrationRef) -> IntegrationOut:
    return _integration_out(params.integration_type, await integration_row(ctx, params.integration_type))


@action(
    "integrations.save",
    module=MODULE,
    summary="Save an integration's settings (OpenAI, Runware, image generation); secrets are encrypted",
    roles=ADMIN_ROLES,
    route=Route("PUT", "system/settings/integrations/{integration_type}/"),
)
async def save_integration(ctx: ActionContext, params: IntegrationSave) -> IntegrationOut:
    row = await integration_row(ctx, params.integration_type)
    if row is None:
        row = IntegrationSettings(integration_type=params.integration_type, config={})
        ctx.session.add(row)
    row.config = merge_config(row.config, params.config)
    row.is_active = params.is_active
    await ctx.session.flush()
    return _integration_out(params.integration_type, row)


# --- prompts -----------------------------------------------------------------------------------


class PromptOut(BaseModel):
    prompt_type: str
    prompt_value: str
    is_custom: bool
    variables: list[str]


class PromptRef(ActionInput):
    prompt_type: str = Field(description=f"One of: {', '.join(PROMPT_VARIABLES)}")


class PromptSave(PromptRef):
    prompt_value: str = Field(min_length=1, max_length=50_000)


def _prompt_out(prompt_type: str, override: AIPrompt | None) -> PromptOut:
    return PromptOut(
        prompt_type=prompt_type,
        prompt_value=override.prompt_value if override else default_prompt(prompt_type),
        is_custom=override is not None,
        variables=sorted(PROMPT_VARIABLES[prompt_type]),
    )


async def _override(ctx: ActionContext, prompt_type: str) -> AIPrompt | None:
    default_prompt(prompt_type)
    return await ctx.session.scalar(select(AIPrompt).where(AIPrompt.prompt_type == prompt_type))


@action(
    "prompts.list",
    module=MODULE,
    summary="List the AI prompts in use (defaults and your overrides)",
    roles=ALL_ROLES,
    route=Route("GET", "system/prompts/"),
)
async def list_prompts(ctx: ActionContext, params: NoInput) -> list[PromptOut]:
    overrides = {p.prompt_type: p for p in (await ctx.session.scalars(select(AIPrompt))).all()}
    return [_prompt_out(t, overrides.get(t)) for t in PROMPT_VARIABLES]


@action(
    "prompts.get",
    module=MODULE,
    summary="Show one AI prompt",
    roles=ALL_ROLES,
    route=Route("GET", "system/prompts/{prompt_type}/"),
)
async def get_prompt(ctx: ActionContext, params: PromptRef) -> PromptOut:
    return _prompt_out(params.prompt_type, await _override(ctx, params.prompt_type))


@action(
    "prompts.save",
    module=MODULE,
    summary="Override an AI prompt for your account (validated)",
    roles=ADMIN_ROLES,
    route=Route("PUT", "system/prompts/{prompt_type}/"),
)
async def save_prompt(ctx: ActionContext, params: PromptSave) -> PromptOut:
    validate_template(params.prompt_type, params.prompt_value)
    row = await _override(ctx, params.prompt_type)
    if row is None:
        row = AIPrompt(
            prompt_type=params.prompt_type, prompt_value=params.prompt_value, function_name=params.prompt_type
        )
        ctx.session.add(row)
    row.prompt_value = params.prompt_value
    await ctx.session.flush()
    return _prompt_out(params.prompt_type, row)


@action(
    "prompts.reset_to_default",
    module=MODULE,
    summary="Drop your override and use the default prompt",
    roles=ADMIN_ROLES,
    route=Route("POST", "system/prompts/{prompt_type}/reset_to_default/"),
)
async def reset_prompt(ctx: ActionContext, params: PromptRef) -> PromptOut:
    row = await _override(ctx, params.prompt_type)
    if row is not None:
        await ctx.session.delete(row)
    return _prompt_out(params.prompt_type, None)


# --- author profiles ---------------------------------------------------------------------------


class AuthorProfileOut(ObjectOut):
    id: int
    name: str
    description: str
    tone: str
    language: str
    is_active: bool
    created_at: datetime


class AuthorProfileCreate(ActionInput):
    name: str = Field(min_length=1, max_length=255)
    description: str = ""
    tone: str = Field("professional", max_length=100)
    language: str = Field("en", max_length=50)
    is_active: bool = True


class AuthorProfileUpdate(ActionInput):
    id: int
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    tone: str | None = Field(None, max_length=100)
    language: str | None = Field(None, max_length=50)
    is_active: bool | None = None


@action(
    "author_profiles.list",
    module=MODULE,
    summary="List author profiles",
    roles=ALL_ROLES,
    route=Route("GET", "system/author-profiles/"),
)
async def list_author_profiles(ctx: ActionContext, params: PageInput) -> Page[AuthorProfileOut]:
    stmt = order_by(
        select(AuthorProfile),
        params.ordering,
        {"name": AuthorProfile.name, "created_at": AuthorProfile.created_at},
        "name",
        AuthorProfile.id,
    )
    return await paginate(ctx.session, stmt, params, lambda row: AuthorProfileOut.model_validate(row[0]))


@action(
    "author_profiles.create",
    module=MODULE,
    summary="Add an author profile (tone, language)",
    roles=ADMIN_ROLES,
    route=Route("POST", "system/author-profiles/"),
)
async def create_author_profile(ctx: ActionContext, params: AuthorProfileCreate) -> AuthorProfileOut:
    profile = AuthorProfile(**params.model_dump())
    ctx.session.add(profile)
    await ctx.session.flush()
    await ctx.session.refresh(profile)
    return AuthorProfileOut.model_validate(profile)


@action(
    "author_profiles.update",
    module=MODULE,
    summary="Change an author profile",
    roles=ADMIN_ROLES,
    route=Route("PUT", "system/author-profiles/{id}/"),
)
async def update_author_profile(ctx: ActionContext, params: AuthorProfileUpdate) -> AuthorProfileOut:
    profile = await get_or_404(ctx.session, AuthorProfile, params.id)
    apply_changes(profile, params.model_dump(exclude={"id"}, exclude_unset=True))
    await ctx.session.flush()
    await ctx.session.refresh(profile)
    return AuthorProfileOut.model_validate(profile)


@action(
    "author_profiles.delete",
    module=MODULE,
    summary="Delete an author profile",
    roles=ADMIN_ROLES,
    route=Route("DELETE", "system/author-profiles/{id}/"),
)
async def delete_author_profile(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, AuthorProfile, params.id)


# --- strategies --------------------------------------------------------------------------------


class StrategyOut(ObjectOut):
    id: int
    name: str
    description: str
    sector_id: int | None
    prompt_types: dict[str, Any]
    section_logic: dict[str, Any]
    is_active: bool
    created_at: datetime


class StrategyCreate(ActionInput):
    name: str = Field(min_length=1, max_length=255)
    description: str = ""
    sector_id: int | None = Field(None, description="Only for this sector (default: all)")
    prompt_types: dict[str, Any] = Field(default_factory=dict)
    section_logic: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True


class StrategyUpdate(ActionInput):
    id: int
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    sector_id: int | None = None
    prompt_types: dict[str, Any] | None = None
    section_logic: dict[str, Any] | None = None
    is_active: bool | None = None


async def _check_sector(ctx: ActionContext, sector_id: int | None) -> None:
    if sector_id is not None and await ctx.session.get(Sector, sector_id) is None:
        raise ValidationFailed.single("sector_id", f"sector {sector_id} not found")


@action(
    "strategies.list",
    module=MODULE,
    summary="List content strategies",
    roles=ALL_ROLES,
    route=Route("GET", "system/strategies/"),
)
async def list_strategies(ctx: ActionContext, params: PageInput) -> Page[StrategyOut]:
    """Account-wide strategies, and those of sectors the caller can reach (editors and viewers see
    only their sites' sectors, which the tenant filter applies to the ``Sector`` subquery)."""
    visible = select(Strategy)
    if ctx.tenant.site_ids is not None:
        visible = visible.where(or_(Strategy.sector_id.is_(None), Strategy.sector_id.in_(select(Sector.id))))
    stmt = order_by(
        visible,
        params.ordering,
        {"name": Strategy.name, "created_at": Strategy.created_at},
        "name",
        Strategy.id,
    )
    return await paginate(ctx.session, stmt, params, lambda row: StrategyOut.model_validate(row[0]))


@action(
    "strategies.create",
    module=MODULE,
    summary="Add a content strategy that steers AI writing",
    roles=ADMIN_ROLES,
    route=Route("POST", "system/strategies/"),
)
async def create_strategy(ctx: ActionContext, params: StrategyCreate) -> StrategyOut:
    await _check_sector(ctx, params.sector_id)
    strategy = Strategy(**params.model_dump())
    ctx.session.add(strategy)
    await ctx.session.flush()
    await ctx.session.refresh(strategy)
    return StrategyOut.model_validate(strategy)


@action(
    "strategies.update",
    module=MODULE,
    summary="Change a content strategy",
    roles=ADMIN_ROLES,
    route=Route("PUT", "system/strategies/{id}/"),
)
async def update_strategy(ctx: ActionContext, params: StrategyUpdate) -> StrategyOut:
    strategy = await get_or_404(ctx.session, Strategy, params.id)
    changes = params.model_dump(exclude={"id"}, exclude_unset=True)
    await _check_sector(ctx, changes.get("sector_id"))
    apply_changes(strategy, changes, nullable={"sector_id"})
    try:
        await ctx.session.flush()
    except IntegrityError:
        raise ValidationFailed.single("sector_id", "invalid sector") from None
    await ctx.session.refresh(strategy)
    return StrategyOut.model_validate(strategy)


@action(
    "strategies.delete",
    module=MODULE,
    summary="Delete a content strategy",
    roles=ADMIN_ROLES,
    route=Route("DELETE", "system/strategies/{id}/"),
)
async def delete_strategy(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Strategy, params.id)


# --- connection tests --------------------------------------------------------------------------


class ConnectionOut(BaseModel):
    ok: bool
    model: str
    latency_ms: int
    detail: str = ""


class ConnectionTestInput(ActionInput):
    key: str | None = Field(None, description="Test this API key instead of the saved one (not stored)")
    base_url: str | None = Field(None, description="Test this server instead of the saved one")
    model: str | None = None


async def _effective(ctx: ActionContext, params: ConnectionTestInput, kind: str) -> Settings:
    configs = await integration_configs(ctx.session)
    given = {"api_key": params.key, "base_url": params.base_url, "model": params.model}
    overrides = {k: v for k, v in given.items() if v}
    return effective_settings({**configs, kind: {**configs.get(kind, {}), **overrides}})


@action(
    "integrations.test_openai",
    module=MODULE,
    summary="Check the OpenAI-compatible server answers with the saved (or given) key and model",
    roles=ADMIN_ROLES,
    route=Route("POST", "system/settings/integrations/openai/test_openai/"),
)
async def test_openai(ctx: ActionContext, params: ConnectionTestInput) -> ConnectionOut:
    settings = await _effective(ctx, params, "openai")
    if not llm_configured(settings):
        raise ValidationFailed.single("key", "no OpenAI-compatible server is configured; save one first")
    check = await test_chat_connection(
        base_url=settings.llm_base_url or DEFAULT_BASE_URL,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        model=settings.llm_model or DEFAULT_MODEL,
    )
    return ConnectionOut(ok=True, **asdict(check))


@action(
    "integrations.test_runware",
    module=MODULE,
    summary="Check the saved (or given) Runware key works",
    roles=ADMIN_ROLES,
    route=Route("POST", "system/settings/integrations/runware/test_runware/"),
)
async def test_runware(ctx: ActionContext, params: ConnectionTestInput) -> ConnectionOut:
    settings = await _effective(ctx, params, "runware")
    if settings.runware_api_key is None:
        raise ValidationFailed.single("key", "no Runware API key is saved or given")
    check = await test_runware_connection(
        api_key=settings.runware_api_key.get_secret_value(),
        base_url=settings.runware_base_url,
        model=params.model or "runware:100@1",
    )
    return ConnectionOut(ok=True, **asdict(check))


class TestImageInput(ActionInput):
    prompt: str = Field("A calm mountain lake at sunrise, photographic", min_length=3, max_length=2000)
    width: int = Field(1024, ge=128, le=2048)
    height: int = Field(1024, ge=128, le=2048)


class TestImageOut(BaseModel):
    provider: str
    model: str
    url: str | None
    bytes: int
    mime_type: str
    credits_charged: int


@action(
    "integrations.generate_image",
    module=MODULE,
    summary="Generate one test image with the configured image provider (charged as one image)",
    roles=ADMIN_ROLES,
    cost=lambda p: credits_for("image_generation", 1),
    route=Route("POST", "system/settings/integrations/image_generation/generate_image/"),
)
async def generate_test_image(ctx: ActionContext, params: TestImageInput) -> TestImageOut:
    configs = await integration_configs(ctx.session)
    provider = image_provider(effective_settings(configs), configs.get("image_generation", {}))
    if provider is None:
        data = placeholder_png(params.prompt, params.width, params.height)
        made = GeneratedImage(data=data, url=None, mime_type="image/png", usage=Usage(model=OFFLINE_MODEL))
    else:
        async with provider:
            made = await provider.generate(
                account_id=ctx.tenant.account_id,
                prompt=params.prompt,
                width=params.width,
                height=params.height,
            )
    credits = credits_for("image_generation", 1)
    await deduct(ctx.session, credits=credits, operation="image_generation", description="test image")
    await log_usage(
        ctx.session,
        operation="image_generation",
        credits=credits,
        model=made.usage.model,
        cost_usd=made.usage.cost_usd,
        details={"function": "test_image", "images": 1},
    )
    return TestImageOut(
        provider=getattr(provider, "name", OFFLINE_MODEL),
        model=made.usage.model,
        url=made.url,
        bytes=len(made.data or b""),
        mime_type=made.mime_type,
        credits_charged=credits,
    )
