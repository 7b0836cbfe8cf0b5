"""Accounts, users, plans, sites, sectors and the industry catalogue (the seed's ``auth``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import AccountScoped, Base, SiteOwned, Timestamped

MAX_ACTIVE_SECTORS_PER_SITE = 5


class Role(StrEnum):
    DEVELOPER = "developer"
    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    SYSTEM_BOT = "system_bot"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TRIAL = "trial"
    CANCELLED = "cancelled"


class Plan(Timestamped, Base):
    """A subscription tier; a ``None`` limit means unlimited."""

    __tablename__ = "igny8_plans"
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    price_usd: Mapped[int] = mapped_column(default=0)
    max_users: Mapped[int | None]
    max_sites: Mapped[int | None]
    max_keywords: Mapped[int | None]
    max_clusters: Mapped[int | None]
    max_content_ideas: Mapped[int | None]
    max_ai_requests_per_month: Mapped[int | None]
    max_words_per_month: Mapped[int | None]
    max_images_per_month: Mapped[int | None]
    credits_per_month: Mapped[int] = mapped_column(default=0)
    included_credits: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    def effective_credits_per_month(self) -> int:
        return self.included_credits if self.included_credits is not None else self.credits_per_month


class Account(Timestamped, Base):
    __tablename__ = "igny8_accounts"
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("igny8_users.id", use_alter=True, ondelete="SET NULL")
    )
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_plans.id"))
    credits: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20), default=AccountStatus.ACTIVE)
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)

    plan: Mapped[Plan | None] = relationship(lazy="raise")

    def is_system_account(self) -> bool:
        return self.is_system


class User(AccountScoped, Base):
    __tablename__ = "igny8_users"
    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=Role.OWNER)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")

    def has_role(self, role: str) -> bool:
        return self.role == role

    def is_owner_or_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    def is_developer(self) -> bool:
        return self.role == Role.DEVELOPER


class ApiKey(AccountScoped, Base):
    """A per-user key; only its SHA-256 is stored, the prefix helps people tell keys apart."""

    __tablename__ = "igny8_api_keys"
    user_id: Mapped[int] = mapped_column(ForeignKey("igny8_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="default")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Industry(Timestamped, Base):
    __tablename__ = "igny8_industries"
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class IndustrySector(Timestamped, Base):
    __tablename__ = "igny8_industry_sectors"
    __table_args__ = (UniqueConstraint("industry_id", "slug"),)
    industry_id: Mapped[int] = mapped_column(ForeignKey("igny8_industries.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Site(AccountScoped, Base):
    __tablename__ = "igny8_sites"
    __table_args__ = (UniqueConstraint("account_id", "slug"),)
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(500))
    industry_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_industries.id"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    wp_url: Mapped[str | None] = mapped_column(String(500))
    wp_username: Mapped[str | None] = mapped_column(String(255))
    wp_app_password: Mapped[str | None] = mapped_column(String(500))


class Sector(SiteOwned, Base):
    __tablename__ = "igny8_sectors"
    __table_args__ = (UniqueConstraint("site_id", "slug"),)
    industry_sector_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_industry_sectors.id"))
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="active")


class SiteUserAccess(SiteOwned, Base):
    """Grants an editor or viewer one site; owners and admins need no grant."""

    __tablename__ = "igny8_site_user_access"
    __table_args__ = (UniqueConstraint("user_id", "site_id"),)
    user_id: Mapped[int] = mapped_column(ForeignKey("igny8_users.id", ondelete="CASCADE"))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_users.id"))
