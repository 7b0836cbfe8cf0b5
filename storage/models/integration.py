"""Per-site connections to external platforms (WordPress, Shopify, custom APIs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, SiteOwned


class SiteIntegration(SiteOwned, Base):
    __tablename__ = "igny8_site_integrations"
    platform: Mapped[str] = mapped_column(String(50), default="wordpress")
    platform_type: Mapped[str] = mapped_column(String(50), default="cms")
    config_json: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_json: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sync_at: Mapped[datetime | None]
    sync_status: Mapped[str] = mapped_column(String(20), default="pending")
    sync_error: Mapped[str | None] = mapped_column(Text)
