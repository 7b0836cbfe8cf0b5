"""Records of content published and site blueprints deployed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, SiteOwned


class PublishingRecord(SiteOwned, Base):
    __tablename__ = "igny8_publishing_records"
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_sectors.id", ondelete="SET NULL"))
    content_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_content.id", ondelete="SET NULL"))
    site_blueprint_id: Mapped[int | None] = mapped_column(
        ForeignKey("igny8_site_blueprints.id", ondelete="SET NULL")
    )
    destination: Mapped[str] = mapped_column(String(50), default="wordpress")
    destination_id: Mapped[str | None] = mapped_column(String(255))
    destination_url: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    published_at: Mapped[datetime | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DeploymentRecord(SiteOwned, Base):
    __tablename__ = "igny8_deployment_records"
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_sectors.id", ondelete="SET NULL"))
    site_blueprint_id: Mapped[int] = mapped_column(ForeignKey("igny8_site_blueprints.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(default=1)
    deployed_version: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    deployment_url: Mapped[str | None] = mapped_column(String(1000))
    error_message: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deployed_at: Mapped[datetime | None]
