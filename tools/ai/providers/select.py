"""Which providers serve an account: its IntegrationSettings first, then the process settings, then
the offline provider. Decrypted secrets live only inside the provider objects built here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import secrets
from storage.exceptions import ValidationFailed
from storage.models import IntegrationSettings
from storage.settings import Settings, get_settings
from tools.ai.offline import OFFLINE_MODEL
from tools.ai.providers.base import ChatProvider, ImageProvider
from tools.ai.providers.images import OpenAIImages, RunwareImages
from tools.ai.providers.openai_compat import OpenAICompatibleChat

IMAGE_PROVIDERS = ("offline", "openai", "runware")


@dataclass
class ProviderSet:
    """``None`` means the offline provider serves that kind of call."""

    chat: ChatProvider | None
    images: ImageProvider | None

    @property
    def chat_name(self) -> str:
        return OFFLINE_MODEL if self.chat is None else getattr(self.chat, "model", "llm")

    async def aclose(self) -> None:
        for provider in (self.chat, self.images):
            if provider is not None and hasattr(provider, "aclose"):
                await provider.aclose()


async def integration_configs(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """The account's active integration configs, secrets decrypted (never to be returned)."""
    rows = (await session.scalars(select(IntegrationSettings).where(IntegrationSettings.is_active))).all()
    return {
        row.integration_type: {
            k: secrets.decrypt(v) if secrets.is_encrypted(v) else v for k, v in row.config.items()
        }
        for row in rows
    }


def effective_settings(configs: dict[str, dict[str, Any]], base: Settings | None = None) -> Settings:
    """Process settings with the account's OpenAI and Runware overrides applied."""
    base = base or get_settings()
    openai, runware = configs.get("openai", {}), configs.get("runware", {})
    update: dict[str, Any] = {}
    if openai.get("base_url"):
        update["llm_base_url"] = openai["base_url"]
    if openai.get("api_key"):
        update["llm_api_key"] = SecretStr(openai["api_key"])
    if openai.get("model"):
        update["llm_model"] = openai["model"]
    if runware.get("api_key"):
        update["runware_api_key"] = SecretStr(runware["api_key"])
    if runware.get("base_url"):
        update["runware_base_url"] = runware["base_url"]
    return base.model_copy(update=update)


def llm_configured(settings: Settings) -> bool:
    return bool(settings.llm_base_url or settings.llm_api_key)


def image_provider(settings: Settings, config: dict[str, Any]) -> ImageProvider | None:
    choice = config.get("provider", "offline")
    if choice not in IMAGE_PROVIDERS:
        raise ValidationFailed.single("image_generation.provider", f"one of {', '.join(IMAGE_PROVIDERS)}")
    if choice == "openai":
        return OpenAIImages.from_settings(settings, model=config.get("model") or "dall-e-3")
    if choice == "runware":
        return RunwareImages.from_settings(settings, model=config.get("model") or "runware:100@1")
    return None


async def providers_for(session: AsyncSession) -> ProviderSet:
    configs = await integration_configs(session)
    settings = effective_settings(configs)
    chat = OpenAICompatibleChat.from_settings(settings) if llm_configured(settings) else None
    return ProviderSet(chat=chat, images=image_provider(settings, configs.get("image_generation", {})))
