"""Who is talking, handed to the graph as LangGraph runtime context — never a tool argument."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from storage.db import Database
from storage.tenancy import TenantContext

DEFAULT_CONFIRM_CREDITS_ABOVE = 50


@dataclass(frozen=True)
class AgentContext:
    """Resolved by the surface (Slack team+user, JWT/API key, CLI profile) before the graph runs.

    ``site_id``/``sector_id`` are the conversation's defaults for actions that need them.
    ``inbox`` drains messages that arrived while this thread's run was busy. ``attachments`` are the
    files the user attached to this conversation (name -> content), which a tool's ``file`` argument
    names. ``local_files`` lets a message name a file on this machine (the CLI); a server surface
    must never allow it.
    """

    tenant: TenantContext
    db: Database
    thread_id: str
    site_id: int | None = None
    sector_id: int | None = None
    confirm_credits_above: int = DEFAULT_CONFIRM_CREDITS_ABOVE
    inbox: Callable[[], list[str]] = field(default=lambda: [])
    local_files: bool = False  # only the CLI may name files on this machine
    attachments: Mapping[str, bytes] = field(default_factory=dict)
