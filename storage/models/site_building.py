"""Site blueprints, their pages, clusters and taxonomies, and the builder's option catalogue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, SiteSectorScoped, Timestamped


class SiteBlueprint(SiteSectorScoped, Base):
    __tablename__ = "igny8_site_blueprints"
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    config_json: Mapped[dict[str, Any]] = mapped_column(default=dict)
    structure_json: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    hosting_type: Mapped[str] = mapped_column(String(20), default="igny8_sites")
    version: Mapped[int] = mapped_column(default=1)
    deployed_version: Mapped[int | None]


class PageBlueprint(SiteSectorScoped, Base):
    __tablename__ = "igny8_page_blueprints"
    __table_args__ = (UniqueConstraint("site_blueprint_id", "slug"),)
    site_blueprint_id: Mapped[int] = mapped_column(
        ForeignKey("igny8_site_blueprints.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(50), default="custom")
    blocks_json: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    order: Mapped[int] = mapped_column(default=0)


class SiteBlueprintCluster(SiteSectorScoped, Base):
    __tablename__ = "igny8_site_blueprint_clusters"
    __table_args__ = (UniqueConstraint("site_blueprint_id", "cluster_id", "role"),)
    site_blueprint_id: Mapped[int] = mapped_column(ForeignKey("igny8_site_blueprints.id", ondelete="CASCADE"))
    cluster_id: Mapped[int] = mapped_column(ForeignKey("igny8_clusters.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default="hub")
    coverage_status: Mapped[str] = mapped_column(String(20), default="pending")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SiteBlueprintTaxonomy(SiteSectorScoped, Base):
    __tablename__ = "igny8_site_blueprint_taxonomies"
    __table_args__ = (UniqueConstraint("site_blueprint_id", "slug"),)
    site_blueprint_id: Mapped[int] = mapped_column(ForeignKey("igny8_site_blueprints.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255))
    taxonomy_type: Mapped[str] = mapped_column(String(50), default="blog_category")
    description: Mapped[str] = mapped_column(Text, default="")
    cluster_ids: Mapped[list[Any]] = mapped_column(default=list)
    external_reference: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SiteBuilderOption(Timestamped, Base):
    """Global catalogue (business types, audiences, personalities, hero imagery)."""

    __tablename__ = "igny8_site_builder_options"
    __table_args__ = (UniqueConstraint("option_type", "name"),)
    option_type: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    order: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
