"""``igny8 serve``: the HTTP API, chat and web page in one process, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer
from aiohttp import web

from agent.memory import open_checkpointer
from agent.runner import Conversations
from bots.cli.generated import run_sync
from bots.cli.render import console
from bots.http.app import RateLimit, configure_logging, create_app
from storage import migrate
from storage.db import get_database
from storage.settings import Settings, get_settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    write_rate: Annotated[float, typer.Option(help="Write requests per second per account")] = 20.0,
    write_burst: Annotated[int, typer.Option(help="Write requests an account may burst")] = 200,
) -> None:
    """Migrate the database, then serve REST (/api/v1), chat, the web page and /metrics."""
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    if settings.secret_key == Settings.model_fields["secret_key"].default:
        console.print(
            "[yellow]IGNY8_SECRET_KEY is the development default; set it before exposing this.[/yellow]"
        )
    configure_logging()
    run_sync(lambda: _serve(host, port, RateLimit(rate=write_rate, burst=write_burst)))


async def _serve(host: str, port: int, limit: RateLimit) -> None:
    db = get_database()
    try:
        async with open_checkpointer(db.url) as saver:
            app = create_app(db, Conversations(db, saver), write_limit=limit)
            runner = web.AppRunner(app, access_log=None)  # our middleware writes the access log
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
                shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host
                console.print(
                    f"IGNY8 is serving on [bold]http://{shown}:{port}/[/bold] "
                    f"(API docs: http://{shown}:{port}/api/v1/docs) — Ctrl-C to stop.",
                    soft_wrap=True,
                )
                await _until_stopped()
            finally:
                await runner.cleanup()
    finally:
        await db.dispose()


async def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM (what ``docker stop`` sends), then return for a clean shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
