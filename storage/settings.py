"""Process configuration, read once from the environment (prefix ``IGNY8_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.cwd() / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IGNY8_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'igny8.db'}",
        description="SQLAlchemy URL; sqlite+aiosqlite:// (default) or postgresql+psycopg://",
    )
    redis_url: str | None = Field(default=None, description="Celery broker and pub/sub")
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_response_format: Literal["json_schema", "json_object", "text"] = Field(
        default="json_schema",
        description="Strongest structured-output mode to try; degraded automatically when refused",
    )
    llm_rpm: int | None = Field(default=500, description="Requests per minute per account (None = unlimited)")
    llm_tpm: int | None = Field(
        default=200_000, description="Tokens per minute per account (None = unlimited)"
    )
    llm_max_concurrency: int | None = Field(default=8, description="In-flight LLM requests per account")
    llm_max_retries: int = Field(default=3, description="Extra attempts on 429/5xx/timeouts")
    llm_timeout_s: float = Field(default=120.0, description="Per-request timeout for LLM calls")
    image_rpm: int | None = Field(default=50, description="Image requests per minute per account")
    image_max_concurrency: int | None = Field(default=4, description="In-flight image requests per account")
    image_timeout_s: float = Field(default=180.0, description="Per-request timeout for image generation")
    runware_base_url: str = "https://api.runware.ai/v1"
    runware_api_key: SecretStr | None = None
    secret_key: SecretStr = Field(
        default=SecretStr("dev-insecure-secret-change-me"),
        description="Signs tokens and encrypts integration secrets",
    )
    api_key: SecretStr | None = Field(default=None, description="CLI default API key")
    data_dir: Path = DEFAULT_DATA_DIR
    max_upload_bytes: int = 20 * 1024 * 1024
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description="Proxies whose X-Forwarded-Proto/Host/For headers are believed (comma list, or *)",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
