"""The ``igny8`` command end to end, as a user runs it: a real process against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bots.cli.quickstart import SAMPLE_KEYWORDS
from storage.db import Database

IGNY8 = str(Path(sys.executable).parent / "igny8")


@pytest.fixture
def igny8(db: Database, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGNY8_")}
    env |= {"IGNY8_DATABASE_URL": db.url, "COLUMNS": "200"}

    def run(*args: str, key: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        extra = {"IGNY8_API_KEY": key} if key else {}
        proc = subprocess.run(
            [IGNY8, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env | extra,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc

    return run


def test_account_to_keywords_round_trip(igny8, tmp_path: Path):
    made = json.loads(
        igny8(
            "accounts",
            "create",
            "--name",
            "CLI Co",
            "--email",
            f"cli-{tmp_path.name}@ex.com",
            "--plan",
            "starter",
        ).stdout
    )
    assert made["api_key"].startswith("igny8_") and made["account_id"] and made["user_id"]
    key = made["api_key"]
    site = json.loads(igny8("sites", "create", "--name", "Blog", "--json", key=key).stdout)
    sector = json.loads(
        igny8("sectors", "create", "--site-id", str(site["id"]), "--name", "Shoes", "--json", key=key).stdout
    )
    csv_file = tmp_path / "kw.csv"
    csv_file.write_text(
        "Keyword;Search Volume\nred shoes;100\nblue shoes;abc\nred shoes;5\n", encoding="utf-8"
    )
    imported = json.loads(
        igny8(
            "keywords",
            "import-csv",
            "--site-id",
            str(site["id"]),
            "--sector-id",
            str(sector["id"]),
            "--file",
            str(csv_file),
            "--json",
            key=key,
        ).stdout
    )
    assert (imported["imported"], imported["duplicates_skipped"], imported["errors_count"]) == (1, 1, 1)
    assert imported["errors"][0] == {"line": 3, "field": "volume", "message": "'abc' is not a valid volume"}

    listed = json.loads(igny8("run", "keywords.list", "--json", '{"search": "shoes"}', key=key).stdout)
    assert [k["keyword"] for k in listed["results"]] == ["red shoes"]

    refused = igny8("keywords", "bulk-delete", "--ids", str(listed["results"][0]["id"]), key=key, ok=False)
    assert refused.returncode == 1 and "rerun with --yes" in refused.stderr
    deleted = json.loads(
        igny8(
            "keywords", "bulk-delete", "--ids", str(listed["results"][0]["id"]), "--yes", "--json", key=key
        ).stdout
    )
    assert deleted["affected"] == 1

    export = igny8("keywords", "export-csv", key=key).stdout
    assert export.splitlines()[0].startswith("keyword,volume,difficulty")


def test_errors_are_clear_and_exit_nonzero(igny8):
    no_key = igny8("keywords", "list", ok=False)
    assert no_key.returncode == 1 and "API key is required" in no_key.stderr
    bad_key = igny8("keywords", "list", key="igny8_not-a-key", ok=False)
    assert "not valid" in bad_key.stderr
    made = json.loads(igny8("accounts", "create", "--name", "E", "--email", "errors@ex.com").stdout)
    unknown = igny8("run", "keywords.list", "--json", '{"nope": 1}', key=made["api_key"], ok=False)
    assert "nope" in unknown.stderr and "not an argument" in unknown.stderr
    bad_json = igny8("run", "keywords.list", "--json", "{", key=made["api_key"], ok=False)
    assert "--json" in bad_json.stderr
    bad_plan = igny8("accounts", "create", "--name", "X", "--email", "x@ex.com", "--plan", "gold", ok=False)
    assert "plan" in bad_plan.stderr and "unknown plan 'gold'" in bad_plan.stderr


def test_quickstart_on_a_fresh_sqlite_database(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGNY8_")} | {"COLUMNS": "200"}
    first = subprocess.run(
        [IGNY8, "quickstart"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert "Workspace ready" in first.stdout
    key_line = (tmp_path / ".env").read_text().strip()
    assert key_line.startswith("IGNY8_API_KEY=igny8_")
    again = subprocess.run(
        [IGNY8, "quickstart"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert again.returncode == 0 and (tmp_path / ".env").read_text().strip() == key_line
    sample = tmp_path / "var" / "sample-keywords.csv"
    imported = subprocess.run(
        [
            IGNY8,
            "keywords",
            "import-csv",
            "--site-id",
            "1",
            "--sector-id",
            "1",
            "--file",
            str(sample),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert json.loads(imported.stdout)["imported"] == len(SAMPLE_KEYWORDS)


def test_offline_chat_one_shot(igny8, tmp_path: Path):
    made = json.loads(
        igny8("accounts", "create", "--name", "Chat", "--email", f"chat-{tmp_path.name}@ex.com").stdout
    )
    out = igny8("chat", "how many credits do I have?", key=made["api_key"]).stdout
    assert "credits" in out.lower() and "100" in out
    history = igny8("chat", "--history", key=made["api_key"]).stdout
    assert "how many credits do I have?" in history


def test_every_action_has_a_working_cli_command():
    from typer.testing import CliRunner

    from bots.cli import build_app
    from tools.registry import registry

    app, runner = build_app(), CliRunner()
    for act in registry:
        group, verb = act.name.split(".", 1)
        result = runner.invoke(app, [group.replace("_", "-"), verb.replace("_", "-"), "--help"])
        assert result.exit_code == 0, (act.name, result.output)
        assert "--api-key" in result.output and ("--yes" in result.output) == act.confirm
