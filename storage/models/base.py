"""Declarative base and the three scoping mixins the tenant filter keys on.

``AccountScoped`` rows belong to one account; ``SiteOwned`` rows also to one site (editors and
viewers see only their granted sites); ``SiteSectorScoped`` rows also to one sector of that site.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, ForeignKey, Integer, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
PrimaryKey = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive (they hold UTC); PostgreSQL uses its session zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that reads back aware and in UTC on every backend, so callers can compare
    timestamps from anywhere without knowing which database produced them."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id}>"


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, server_default=func.now())


class AccountScoped(Timestamped):
    """Isolated per account; ``account_id`` is set by the session, never by callers."""

    account_id: Mapped[int] = mapped_column(ForeignKey("igny8_accounts.id", ondelete="CASCADE"), index=True)


class SiteOwned(AccountScoped):
    """Belongs to a site; the account is taken from the site on insert."""

    site_id: Mapped[int] = mapped_column(ForeignKey("igny8_sites.id", ondelete="CASCADE"), index=True)


class SiteSectorScoped(SiteOwned):
    """Belongs to a sector of its site; the sector must belong to that site."""

    sector_id: Mapped[int] = mapped_column(ForeignKey("igny8_sectors.id", ondelete="CASCADE"), index=True)
