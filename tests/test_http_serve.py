"""``igny8 serve`` as a user runs it: a real process that migrates, serves, and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from storage.db import Database

IGNY8 = str(Path(sys.executable).parent / "igny8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _line_with(proc: subprocess.Popen[str], needle: str, seconds: float = 60) -> str:
    """The first stdout line containing ``needle``, waiting on the pipe (not polling) up to a bound."""
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = proc.stdout.readline()
            if not line:  # the process ended before it served
                raise AssertionError(proc.communicate()[1])
            if needle in line:
                return line
    raise AssertionError(f"no {needle!r} line within {seconds} s")


def test_serve_answers_until_interrupted(db: Database, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGNY8_")}
    env |= {"IGNY8_DATABASE_URL": db.url, "IGNY8_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [IGNY8, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _line_with(proc, "is serving on")  # printed once the socket listens
        assert f"http://localhost:{port}/" in banner
        base = f"http://127.0.0.1:{port}"
        status, body = _get(f"{base}/healthz")
        assert status == 200 and body == {"success": True, "data": {"status": "ok"}}
        assert _get(f"{base}/readyz")[0] == 200
        status, body = _get(f"{base}/api/v1/planner/keywords/")
        assert status == 401 and body["error"]["code"] == "not_authenticated"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert '"path": "/healthz"' in out and '"status": 200' in out, "one JSON access-log line per request"
