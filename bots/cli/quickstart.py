"""``igny8 quickstart``: a ready local workspace on a fresh machine, reused on later runs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rich.panel import Panel

from bots.cli.render import console
from storage import migrate
from storage.db import Database, get_database
from storage.exceptions import NotAuthenticated, ValidationFailed
from storage.settings import get_settings
from storage.tenancy import TenantContext
from tools import load_actions
from tools.accounts import authenticate_api_key, create_account
from tools.registry import invoke

ENV_FILE = Path(".env")
# Shaped like a keyword tool's export: head terms ("running shoes") next to their longer variants,
# which is what lets clustering find the topics.
SAMPLE_KEYWORDS = [
    ("running shoes", 90500, 68, "commercial"),
    ("best running shoes", 22000, 54, "commercial"),
    ("running shoes for flat feet", 6600, 38, "commercial"),
    ("trail running shoes", 14800, 47, "commercial"),
    ("best trail running shoes", 5400, 44, "commercial"),
    ("how to choose running shoes", 2900, 22, "informational"),
    ("running shoes vs walking shoes", 1300, 18, "informational"),
    ("marathon training plan", 18100, 41, "informational"),
    ("beginner marathon training plan", 5400, 29, "informational"),
    ("half marathon training plan", 12100, 36, "informational"),
    ("half marathon training schedule", 9900, 35, "informational"),
    ("how to start running", 12100, 31, "informational"),
    ("running tips for beginners", 4400, 24, "informational"),
    ("running for beginners", 8100, 30, "informational"),
    ("couch to 5k plan", 33100, 39, "informational"),
    ("running watch", 27100, 58, "commercial"),
    ("buy running watch", 1600, 45, "transactional"),
    ("best gps running watch", 8100, 52, "commercial"),
    ("best running watch", 14800, 55, "commercial"),
    ("garmin forerunner review", 3600, 33, "commercial"),
    ("running knee pain causes", 2400, 27, "informational"),
    ("knee pain after running", 6600, 25, "informational"),
]


def _save_api_key(key: str) -> None:
    lines = ENV_FILE.read_text().splitlines() if ENV_FILE.exists() else []
    lines = [line for line in lines if not line.startswith("IGNY8_API_KEY=")]
    ENV_FILE.write_text("\n".join([*lines, f"IGNY8_API_KEY={key}"]) + "\n")
    ENV_FILE.chmod(0o600)


def _write_sample(data_dir: Path) -> Path:
    path = data_dir / "sample-keywords.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["Keyword,Search Volume,KD,Intent"] + [f"{k},{v},{d},{i}" for k, v, d, i in SAMPLE_KEYWORDS]
    path.write_text("\n".join(rows) + "\n")
    return path


async def _existing_tenant(db: Database) -> TenantContext | None:
    key = get_settings().api_key
    if key is None:
        return None
    try:
        return await authenticate_api_key(db, key.get_secret_value())
    except NotAuthenticated:
        return None


async def _new_tenant(db: Database) -> TenantContext:
    for n in range(1, 100):
        email = "you@example.com" if n == 1 else f"you+{n}@example.com"
        try:
            made = await create_account(db, name="My workspace", email=email, plan="starter")
        except ValidationFailed as exc:
            if exc.errors[0].field == "email":
                continue
            raise
        _save_api_key(made.api_key)
        return await authenticate_api_key(db, made.api_key)
    raise RuntimeError("could not find a free local email address")


async def _workspace(db: Database) -> tuple[TenantContext, int, int]:
    tenant = await _existing_tenant(db) or await _new_tenant(db)
    sites = await invoke("sites.list", {}, db=db, tenant=tenant)
    site_id = (
        sites.results[0].id
        if sites.results
        else (await invoke("sites.create", {"name": "My site"}, db=db, tenant=tenant)).id
    )
    sectors = await invoke("sectors.list", {"site_id": site_id}, db=db, tenant=tenant)
    sector_id = (
        sectors.results[0].id
        if sectors.results
        else (
            await invoke("sectors.create", {"site_id": site_id, "name": "General"}, db=db, tenant=tenant)
        ).id
    )
    return tenant, site_id, sector_id


def quickstart() -> None:
    """Migrate the database, create (or reuse) a local workspace, and show what to try next."""
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    load_actions()

    async def setup() -> tuple[TenantContext, int, int]:
        db = get_database()
        try:
            return await _workspace(db)
        finally:
            await db.dispose()

    tenant, site_id, sector_id = asyncio.run(setup())
    sample = os.path.relpath(_write_sample(settings.data_dir))
    igny8 = ".venv/bin/igny8"
    console.print(
        Panel.fit(
            f"[bold]Workspace ready[/bold] — account {tenant.account_id}, "
            f"site {site_id}, sector {sector_id}\n"
            f"Your API key is in [bold].env[/bold] (IGNY8_API_KEY); every command below uses it.\n"
            "`make run` then serves the web chat at [bold]http://127.0.0.1:8000/[/bold]; "
            "sign in with that key.\n\n"
            f"  {igny8} keywords import-csv --site-id {site_id} --sector-id {sector_id} --file {sample}\n"
            f"  {igny8} keywords list --ordering -volume\n"
            f"  {igny8} clusters create --site-id {site_id} --sector-id {sector_id} --name 'Running shoes'\n"
            f"  {igny8} keywords export-csv > keywords.csv\n"
            f"  {igny8} accounts me\n"
            f"  {igny8} actions            # everything you can do\n"
            f"  {igny8} --help",
            title="IGNY8",
            border_style="green",
        )
    )
