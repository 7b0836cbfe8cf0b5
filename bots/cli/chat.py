"""``igny8 chat``: talk to the agent from a terminal — one message, or a REPL with history."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from agent.memory import open_checkpointer
from agent.runner import AgentEvent, Conversations
from bots.cli.generated import API_KEY_HELP, run_sync, settings_api_key
from bots.cli.render import console
from storage.db import get_database
from storage.tenancy import TenantContext
from tools.accounts import authenticate_api_key

EXIT_WORDS = {"exit", "quit", ":q", "bye"}


class EventPrinter:
    """Renders one turn's events; a progress bar follows each long action."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.tasks: dict[str, int] = {}

    def show(self, event: AgentEvent) -> None:
        data = event.data
        if event.kind == "tool_call":
            console.print(f"[dim]→ {data['action']} {json.dumps(data['arguments'])}[/dim]")
        elif event.kind == "message":
            self.stop()
            console.print(Markdown(data["text"]))
        elif event.kind == "confirm":
            self.stop()
            body = (
                f"[bold]{data['action']}[/bold] {json.dumps(data['arguments'])}\n{data['summary']}"
                f"\nEstimated credits: {data['estimated_credits']}"
                "\nReply [bold]yes[/bold] or [bold]no[/bold]."
            )
            console.print(Panel(body, title="Needs your OK", border_style="yellow"))
        elif event.kind == "job":
            self._job(data)
        elif event.kind == "progress" and self.progress is not None and data["job_id"] in self.tasks:
            self.progress.update(
                self.tasks[data["job_id"]],
                completed=data["done"],
                total=data["total"],
                description=f"{data['action']}: {data['phase']}",
            )
        elif event.kind in ("queued", "error"):
            console.print(f"[dim]{data.get('message', '')}[/dim]")

    def _job(self, data: dict) -> None:
        if data["status"] == "started" and console.is_terminal:
            if self.progress is None:
                self.progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=console,
                    transient=True,
                )
                self.progress.start()
            self.tasks[data["job_id"]] = self.progress.add_task(data["action"], total=None)
        elif data["status"] == "failed":
            console.print(f"[red]{data['action']} failed: {data.get('message', '')}[/red]")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress, self.tasks = None, {}


async def _turn(
    chat: Conversations, tenant: TenantContext, conversation: str, text: str, **ctx: int | None
) -> None:
    printer = EventPrinter()
    try:
        async for event in chat.send(tenant, conversation, text, **ctx):
            printer.show(event)
    finally:
        printer.stop()


async def _session(
    message: str | None,
    conversation: str,
    api_key: str | None,
    history: bool,
    site_id: int | None,
    sector_id: int | None,
) -> None:
    db = get_database()
    try:
        tenant = await authenticate_api_key(db, api_key)
        async with open_checkpointer(db.url) as saver:
            chat = Conversations(db, saver)
            thread = f"cli:{conversation}"
            if history:
                for item in await chat.history(tenant, thread):
                    console.print(f"[bold]{item['role']}[/bold]: {item['content']}")
                return
            ctx = {"site_id": site_id, "sector_id": sector_id, "local_files": True}
            if message is not None:
                await _turn(chat, tenant, thread, message, **ctx)
                return
            console.print("[dim]IGNY8 chat — type 'exit' to leave, '/igny8 help' for commands.[/dim]")
            while True:
                try:
                    text = await asyncio.to_thread(console.input, "[bold green]you>[/bold green] ")
                except (EOFError, KeyboardInterrupt):
                    break
                if text.strip().lower() in EXIT_WORDS:
                    break
                if text.strip():
                    await _turn(chat, tenant, thread, text, **ctx)
    finally:
        await db.dispose()


def chat(
    message: Annotated[str | None, typer.Argument(help="Send one message and exit")] = None,
    conversation: Annotated[
        str, typer.Option(help="Conversation name; each keeps its own history")
    ] = "default",
    site_id: Annotated[int | None, typer.Option(help="Default site for this conversation")] = None,
    sector_id: Annotated[int | None, typer.Option(help="Default sector for this conversation")] = None,
    history: Annotated[bool, typer.Option("--history", help="Print the conversation so far")] = False,
    api_key: Annotated[str | None, typer.Option(envvar="IGNY8_API_KEY", help=API_KEY_HELP)] = None,
) -> None:
    """Chat with the IGNY8 agent (offline interpreter, or your configured model)."""
    key = api_key or settings_api_key()
    run_sync(lambda: _session(message, conversation, key, history, site_id, sector_id))
