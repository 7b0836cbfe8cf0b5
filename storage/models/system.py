"""Per-account AI settings: prompts, integration settings, author profiles, strategies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import AccountScoped, Base


class AIPrompt(AccountScoped, Base):
    __tablename__ = "igny8_ai_prompts"
    __table_args__ = (UniqueConstraint("account_id", "prompt_type"),)
    prompt_type: Mapped[str] = mapped_column(String(50))
    prompt_value: Mapped[str] = mapped_column(Text)
    function_name: Mapped[str | None] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class IntegrationSettings(AccountScoped, Base):
    """``config`` holds secrets encrypted at rest; they are never returned to callers."""

    __tablename__ = "igny8_integration_settings"
    __table_args__ = (UniqueConstraint("account_id", "integration_type"),)
    integration_type: Mapped[str] = mapped_column(String(50))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class AuthorProfile(AccountScoped, Base):
    __tablename__ = "igny8_author_profiles"
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    tone: Mapped[str] = mapped_column(String(100), default="professional")
    language: Mapped[str] = mapped_column(String(50), default="en")
    structure_template: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Strategy(AccountScoped, Base):
    __tablename__ = "igny8_strategies"
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_sectors.id", ondelete="SET NULL"))
    prompt_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    section_logic: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
