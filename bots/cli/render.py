"""Turn action results and errors into something a person reads in a terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from storage.exceptions import Igny8Error, ValidationFailed

console = Console()
err_console = Console(stderr=True)

MAX_COLUMNS = 9
HIDDEN_IN_TABLES = frozenset({"created_at", "updated_at", "account_id", "site_id", "sector_id"})


def to_jsonable(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


def print_json(result: Any) -> None:
    console.print_json(json.dumps(to_jsonable(result), default=str))


def print_result(result: Any) -> None:
    data = to_jsonable(result)
    if isinstance(data, Mapping) and isinstance(data.get("results"), list):
        _print_page(data)
    elif isinstance(data, Mapping):
        _print_object(data)
    else:
        console.print(data)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if len(value) <= 6 else f"{len(value)} items"
    if isinstance(value, dict):
        return json.dumps(value)[:60]
    return str(value)


def _print_page(page: Mapping[str, Any]) -> None:
    rows: list[Mapping[str, Any]] = page["results"]
    if not rows:
        console.print("[dim]Nothing found.[/dim]")
        return
    columns = [c for c in rows[0] if c not in HIDDEN_IN_TABLES][:MAX_COLUMNS]
    table = Table(show_lines=False, header_style="bold")
    for column in columns:
        widest = max(len(_cell(row.get(column))) for row in rows)
        table.add_column(column, overflow="fold", min_width=min(max(widest, len(column)), 40))
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)
    shown_to = (page["page"] - 1) * page["page_size"] + len(rows)
    more = f" — next: --page {page['next']}" if page.get("next") else ""
    console.print(f"[dim]{shown_to - len(rows) + 1}-{shown_to} of {page['count']}{more}[/dim]")


def _print_object(data: Mapping[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            table.add_row(key, "")
            for item in value:
                table.add_row("", ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            table.add_row(key, _cell(value))
    console.print(table)


def print_error(exc: Igny8Error) -> None:
    if isinstance(exc, ValidationFailed):
        err_console.print("[bold red]Invalid input[/bold red]")
        for error in exc.errors:
            err_console.print(f"  [red]{error.field}[/red]: {error.message}")
        return
    err_console.print(f"[bold red]Error[/bold red] ({exc.code}): {exc.message}")
