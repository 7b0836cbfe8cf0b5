"""Keywords, clusters and content ideas (the seed's planner)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, PrimaryKey, SiteSectorScoped


class KeywordStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Intent(StrEnum):
    INFORMATIONAL = "informational"
    NAVIGATIONAL = "navigational"
    COMMERCIAL = "commercial"
    TRANSACTIONAL = "transactional"


class ClusterStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class ContentType(StrEnum):
    BLOG_POST = "blog_post"
    ARTICLE = "article"
    GUIDE = "guide"
    TUTORIAL = "tutorial"
    PAGE = "page"
    PRODUCT = "product"


class ContentStructure(StrEnum):
    ARTICLE = "article"
    CLUSTER_HUB = "cluster_hub"
    PILLAR_PAGE = "pillar_page"
    SUPPORTING_PAGE = "supporting_page"
    LANDING_PAGE = "landing_page"
    HOW_TO = "how_to"
    LISTICLE = "listicle"
    COMPARISON = "comparison"
    REVIEW = "review"


class IdeaStatus(StrEnum):
    NEW = "new"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"


# Rows here are reachable only through a Cluster or Keyword, both tenant-filtered.
cluster_keywords = Table(
    "igny8_cluster_keywords",
    Base.metadata,
    Column("cluster_id", PrimaryKey, ForeignKey("igny8_clusters.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "keyword_id",
        PrimaryKey,
        ForeignKey("igny8_keywords.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class Keyword(SiteSectorScoped, Base):
    __tablename__ = "igny8_keywords"
    __table_args__ = (UniqueConstraint("site_id", "sector_id", "keyword"),)
    keyword: Mapped[str] = mapped_column(String(255))
    volume: Mapped[int | None] = mapped_column(Integer)
    difficulty: Mapped[int | None] = mapped_column(Integer)
    intent: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=KeywordStatus.PENDING, index=True)

    clusters: Mapped[list[Cluster]] = relationship(
        secondary=cluster_keywords, back_populates="keywords", lazy="selectin"
    )


# The default listing (newest first) reads a page straight off this index instead of sorting
# every keyword of the account for each page.
Index("ix_igny8_keywords_listing", Keyword.account_id, Keyword.created_at.desc(), Keyword.id.desc())


class Cluster(SiteSectorScoped, Base):
    __tablename__ = "igny8_clusters"
    __table_args__ = (UniqueConstraint("sector_id", "name"),)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=ClusterStatus.ACTIVE)

    keywords: Mapped[list[Keyword]] = relationship(
        secondary=cluster_keywords, back_populates="clusters", lazy="raise"
    )


class ContentIdea(SiteSectorScoped, Base):
    __tablename__ = "igny8_content_ideas"
    idea_title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(50), default="blog_post")
    content_structure: Mapped[str] = mapped_column(String(50), default="article")
    target_keywords: Mapped[str] = mapped_column(Text, default="")
    keyword_cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("igny8_clusters.id", ondelete="SET NULL"), index=True
    )
    estimated_word_count: Mapped[int] = mapped_column(default=1000)
    status: Mapped[str] = mapped_column(String(20), default=IdeaStatus.NEW)
