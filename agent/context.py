"""Who is talking, handed to the graph as LangGraph runtime context — never a tool argument."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from storage.db import Database
from storage.tenancy import TenantContext

DEFAULT_CONFIRM_CREDITS_ABOVE = 50


@dataclass(frozen=True)
class AgentContext:
    """Resolved by the surface (Slack team+user, JWT/API key, CLI profile) before the graph runs.

    ``site_id``/``sector_id`` are the conversation's defaults for actions that need them.
    ``inbox`` drains messages that arrived while this thread's run was busy. ``local_files`` lets a
    message name a file on this machine (the CLI); a server surface must never allow it.
    """

    tenant: TenantContext
    db: Database
    thread_id: str
    site_id: int | None = None
    sector_id: int | None = None
    confirm_credits_above: int = DEFAULT_CONFIRM_CREDITS_ABOVE
    inbox: Callable[[], list[str]] = field(default=lambda: [])
    local_files: bool = False  # only the CLI may name files on this machine


def thread_id(account_id: int, surface: str, *parts: object) -> str:
    """Deterministic per conversation and namespaced by account, so one tenant can never name
    another's thread: ``7:slack:T1:C9:1700000000.1``, ``7:http:abc``, ``7:cli:default``."""
    if not surface or any(":" in str(p) for p in (surface, *parts)):
        raise ValueError("thread id parts must be non-empty and may not contain ':'")
    return ":".join([str(account_id), surface, *(str(p) for p in parts)])
