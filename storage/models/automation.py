"""Automation rules and the scheduled runs they produce."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import AccountScoped, Base, SiteOwned


class AutomationRule(SiteOwned, Base):
    __tablename__ = "igny8_automation_rules"
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("igny8_sectors.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    schedule: Mapped[str | None] = mapped_column(String(100))
    conditions: Mapped[list[Any]] = mapped_column(default=list)
    actions: Mapped[list[Any]] = mapped_column(default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    last_executed_at: Mapped[datetime | None]
    execution_count: Mapped[int] = mapped_column(default=0)


class ScheduledTask(AccountScoped, Base):
    __tablename__ = "igny8_scheduled_tasks"
    automation_rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("igny8_automation_rules.id", ondelete="CASCADE")
    )
    scheduled_at: Mapped[datetime]
    executed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
