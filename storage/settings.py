"""Process configuration, read once from the environment (prefix ``IGNY8_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    secret_key: SecretStr = Field(
        default=SecretStr("dev-insecure-secret-change-me"),
        description="Signs tokens and encrypts integration secrets",
    )
    api_key: SecretStr | None = Field(default=None, description="CLI default API key")
    data_dir: Path = DEFAULT_DATA_DIR
    max_upload_bytes: int = 20 * 1024 * 1024


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
