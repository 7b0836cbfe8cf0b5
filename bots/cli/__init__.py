"""The ``igny8`` command: database, account bootstrap, and every registry action as a subcommand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bots.cli.chat import chat
from bots.cli.generated import API_KEY_HELP, add_action_groups, run_action, run_sync, settings_api_key
from bots.cli.quickstart import quickstart
from bots.cli.render import console, print_json
from bots.cli.serve import serve
from storage import migrate
from storage.db import get_database
from storage.exceptions import ValidationFailed
from storage.settings import get_settings
from tools import load_actions
from tools.accounts import create_account
from tools.registry import registry

app = typer.Typer(help="IGNY8 — SEO content planning and writing, driven by chat.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.command("quickstart")(quickstart)
app.command("chat")(chat)
app.command("serve")(serve)

ApiKey = Annotated[str | None, typer.Option(envvar="IGNY8_API_KEY", help=API_KEY_HELP)]


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to IGNY8_DATABASE_URL (SQLite by default)."""
    migrate.upgrade(get_settings().database_url, revision)
    console.print(f"Database at [bold]{_safe_url()}[/bold] is at revision {revision}.")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' drops everything)."""
    migrate.downgrade(get_settings().database_url, revision)


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="Account (company) name")],
    email: Annotated[str, typer.Option(help="Owner's email")],
    plan: Annotated[str, typer.Option(help="free, starter, growth or scale")] = "free",
    credits: Annotated[int | None, typer.Option(help="Starting credits (default: the plan's)")] = None,
    password: Annotated[str | None, typer.Option(help="Owner password for web login")] = None,
) -> None:
    """Create an account with its owner and print the owner's API key (shown once) as JSON."""

    async def create() -> None:
        db = get_database()
        try:
            made = await create_account(
                db, name=name, email=email, plan=plan, credits=credits, password=password
            )
        finally:
            await db.dispose()
        print_json(made)

    run_sync(create)


@app.command("run")
def run(
    action: Annotated[str, typer.Argument(help="Action name, e.g. keywords.list")],
    json_args: Annotated[str, typer.Option("--json", help="Arguments as a JSON object")] = "{}",
    api_key: ApiKey = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm without asking")] = False,
    file: Annotated[
        Path | None, typer.Option(help="Read this file into the action's 'file' argument")
    ] = None,
) -> None:
    """Run any action with JSON arguments; prints the result as JSON."""

    async def run_json() -> None:
        try:
            args = json.loads(json_args)
        except json.JSONDecodeError as exc:
            raise ValidationFailed.single("--json", f"not valid JSON: {exc.msg}") from None
        if not isinstance(args, dict):
            raise ValidationFailed.single("--json", "must be a JSON object")
        if file is not None:
            args["file"] = file.read_bytes()
        key = api_key or settings_api_key()
        await run_action(registry.get(action), args, api_key=key, yes=yes, as_json=True)

    run_sync(run_json)


@app.command("actions")
def list_actions(module: Annotated[str | None, typer.Option(help="Only this module")] = None) -> None:
    """List every action with its module, roles and whether it asks first or runs long."""
    from rich.table import Table

    table = Table(header_style="bold")
    for column in ("action", "module", "summary", "route", "flags"):
        table.add_column(column, overflow="fold")
    for act in registry:
        if module and act.module != module:
            continue
        flags = " ".join(f for f, on in (("confirm", act.confirm), ("long", act.long)) if on)
        route = f"{act.route.method} /api/v1/{act.route.path}" if act.route else ""
        table.add_row(act.name, act.module, act.summary, route, flags)
    console.print(table)


def build_app() -> typer.Typer:
    load_actions()
    add_action_groups(app, {"accounts": accounts_app})
    return app


def main() -> None:
    build_app()(prog_name="igny8")


if __name__ == "__main__":
    main()
