"""Writer tasks, content, images and the content maps (the seed's writer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, SiteSectorScoped


class Task(SiteSectorScoped, Base):
    __tablename__ = "igny8_tasks"
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(Text, default="")
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("igny8_clusters.id", ondelete="SET NULL"), index=True
    )
    idea_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_content_ideas.id", ondelete="SET NULL"))
    content_type: Mapped[str] = mapped_column(String(50), default="blog_post")
    content_structure: Mapped[str] = mapped_column(String(50), default="article")
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    word_count: Mapped[int] = mapped_column(default=0)


class Content(SiteSectorScoped, Base):
    __tablename__ = "igny8_content"
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("igny8_tasks.id", ondelete="SET NULL"), unique=True
    )
    title: Mapped[str] = mapped_column(String(255), default="")
    html_content: Mapped[str] = mapped_column(Text, default="")
    word_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    wp_post_id: Mapped[int | None]
    meta_title: Mapped[str | None] = mapped_column(String(255))
    meta_description: Mapped[str | None] = mapped_column(Text)
    primary_keyword: Mapped[str | None] = mapped_column(String(255))
    secondary_keywords: Mapped[list[Any]] = mapped_column(default=list)


class Image(SiteSectorScoped, Base):
    __tablename__ = "igny8_images"
    task_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_tasks.id", ondelete="CASCADE"))
    content_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_content.id", ondelete="CASCADE"))
    image_type: Mapped[str] = mapped_column(String(20), default="featured")
    prompt: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(1000))
    image_path: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    position: Mapped[int] = mapped_column(default=0)


class ContentClusterMap(SiteSectorScoped, Base):
    __tablename__ = "igny8_content_cluster_map"
    __table_args__ = (UniqueConstraint("content_id", "cluster_id", "role"),)
    content_id: Mapped[int] = mapped_column(ForeignKey("igny8_content.id", ondelete="CASCADE"))
    cluster_id: Mapped[int] = mapped_column(ForeignKey("igny8_clusters.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default="hub")
    source: Mapped[str] = mapped_column(String(20), default="blueprint")


class ContentTaxonomyMap(SiteSectorScoped, Base):
    __tablename__ = "igny8_content_taxonomy_map"
    __table_args__ = (UniqueConstraint("content_id", "taxonomy_id"),)
    content_id: Mapped[int] = mapped_column(ForeignKey("igny8_content.id", ondelete="CASCADE"))
    taxonomy_id: Mapped[int] = mapped_column(
        ForeignKey("igny8_site_blueprint_taxonomies.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(20), default="blueprint")


class ContentAttributeMap(SiteSectorScoped, Base):
    __tablename__ = "igny8_content_attribute_map"
    content_id: Mapped[int] = mapped_column(ForeignKey("igny8_content.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    value: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(20), default="blueprint")
