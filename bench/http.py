"""Benchmark: ``GET /api/v1/planner/keywords/`` over HTTP, ours against a bare aiohttp handler.

Run from the repo root::

    python bench/http.py [--rows 10000] [--workers 32] [--seconds 10] [--runs 2]
                         [--postgres-url URL] [--skip-sqlite] [--skip-postgres]

For each backend (a fresh PostgreSQL ``igny8_bench_<random>`` database, dropped at the end; a temp
SQLite file) it imports ``--rows`` keywords into one sector, refreshes the query planner's
statistics, then, in turn and interleaved, serves:

* ours: the real app (``bots.http.app.create_app``: request id, JSON access log, metrics, auth,
  throttle, the derived route, ``keywords.list`` through ``invoke`` in a tenant-bound transaction,
  pydantic serialisation, the envelope with absolute pagination URLs), called with a JWT access
  token — and, for reference, with an API key (whose ``last_used_at`` is stamped once a minute);
* bare: a plain aiohttp handler running the same page query with SQLAlchemy Core on the same
  database through a plain SQLAlchemy engine (a count and a ``LIMIT 50 OFFSET …`` select of the
  account's keywords, newest first, with the same ORDER BY as ours, and each keyword's cluster ids,
  as ours answers; rows dumped with ``json.dumps``) — no auth, no tenancy, no envelope. This is
  the baseline.

Each server runs in its own process; this process is the load generator: ``--workers`` concurrent
aiohttp clients request random pages (``page_size=50``) for ``--seconds`` after a short warm-up.
It prints requests per second, p50 and p99 latency for each, and ours/bare (target ≥ 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Run as ``python bench/http.py``, this file's folder comes first on sys.path, where it would shadow
# the standard library's ``http`` (which aiohttp imports). Drop that folder; put the repo root there.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from aiohttp import web  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from storage.db import POSTGRES_POOL, Database, normalise_url  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Keyword, cluster_keywords  # noqa: E402
from tools import load_actions  # noqa: E402
from tools.accounts import create_account, tenant_for_user_id  # noqa: E402
from tools.registry import invoke  # noqa: E402

TARGET_RATIO = 0.5
PAGE_SIZE = 50
PATH = "/api/v1/planner/keywords/"
DEFAULT_POSTGRES_URL = os.environ.get(
    "IGNY8_BENCH_POSTGRES_URL",
    os.environ.get("IGNY8_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


# --- data ------------------------------------------------------------------------------------------


@dataclass
class Workspace:
    account_id: int
    user_id: int
    api_key: str
    sector_id: int


async def populate(url: str, rows: int) -> Workspace:
    db = Database(url)
    try:
        made = await create_account(
            db, name="HTTP bench", plan="scale", email=f"bench-{uuid.uuid4().hex[:8]}@example.com"
        )
        owner = await tenant_for_user_id(db, made.user_id)
        site = await invoke("sites.create", {"name": "Bench"}, db=db, tenant=owner)
        sector = await invoke("sectors.create", {"site_id": site.id, "name": "Main"}, db=db, tenant=owner)
        rng = random.Random(7)
        lines = ["keyword,volume,difficulty"] + [
            f"bench keyword {i} {rng.randrange(10**6)},{rng.randrange(50_000)},{rng.randrange(100)}"
            for i in range(rows)
        ]
        args = {"site_id": site.id, "sector_id": sector.id, "file": "\n".join(lines).encode()}
        result = await invoke("keywords.import_csv", args, db=db, tenant=owner)
        if result.imported != rows:
            raise SystemExit(f"imported {result.imported} of {rows} keywords")
        # Measure the steady state: fresh statistics, as autovacuum would have within a minute.
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE igny8_keywords")
        return Workspace(made.account_id, made.user_id, made.api_key, sector.id)
    finally:
        await db.dispose()


# --- servers (each in its own process) -------------------------------------------------------------


def serve_ours(url: str, port: int, ready: mp.synchronize.Event) -> None:
    from bots.http.app import RateLimit, configure_logging, create_app

    # The access log is rendered and written as in production, then dropped.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    configure_logging()

    async def main() -> None:
        db = Database(url)
        app = create_app(db, write_limit=RateLimit(rate=1e9, burst=10**9))
        await _run(app, port, ready)

    asyncio.run(main())


def bare_engine(url: str) -> AsyncEngine:
    """SQLAlchemy's engine without our connection hooks (SQLite then reads without taking the write
    lock), with the same pool as ours on PostgreSQL."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return create_async_engine(url)
    return create_async_engine(url, **POSTGRES_POOL)


def serve_bare(url: str, port: int, ready: mp.synchronize.Event) -> None:
    """The baseline: the same page of the same rows, straight from SQLAlchemy Core."""
    table = Keyword.__table__
    columns = [table.c[name] for name in ("id", "keyword", "volume", "difficulty", "intent", "status")]
    columns += [table.c.site_id, table.c.sector_id, table.c.created_at, table.c.updated_at]

    async def main() -> None:
        engine = bare_engine(url)

        async def keywords(request: web.Request) -> web.Response:
            account_id = int(request.headers["X-Account"])
            page = int(request.query.get("page", "1"))
            size = int(request.query.get("page_size", str(PAGE_SIZE)))
            where = table.c.account_id == account_id
            stmt = (
                select(*columns)
                .where(where)
                .order_by(table.c.created_at.desc(), table.c.id.desc())
                .limit(size)
                .offset((page - 1) * size)
            )
            async with engine.connect() as conn:
                count = await conn.scalar(select(func.count()).select_from(table).where(where))
                rows = [dict(r) for r in (await conn.execute(stmt)).mappings().all()]
                links = select(cluster_keywords.c.keyword_id, cluster_keywords.c.cluster_id).where(
                    cluster_keywords.c.keyword_id.in_([r["id"] for r in rows])
                )
                clusters: dict[int, list[int]] = {}
                for keyword_id, cluster_id in (await conn.execute(links)).all():
                    clusters.setdefault(keyword_id, []).append(cluster_id)
            for row in rows:
                row["cluster_ids"] = sorted(clusters.get(row["id"], []))
            body = {"count": count, "results": rows}
            return web.Response(text=json.dumps(body, default=str), content_type="application/json")

        app = web.Application()
        app.router.add_get(PATH, keywords)
        await _run(app, port, ready)

    asyncio.run(main())


async def _run(app: web.Application, port: int, ready: mp.synchronize.Event) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ready.set()
    await asyncio.Event().wait()


@contextlib.contextmanager
def server(target: object, url: str):  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    port = _free_port()
    ready = ctx.Event()
    proc = ctx.Process(target=target, args=(url, port, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(60):
            raise SystemExit(f"{target} did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<22} {self.rate:8.0f} req/s   p50 {self.percentile(0.5):6.1f} ms   "
            f"p99 {self.percentile(0.99):6.1f} ms   ({self.requests} requests)"
        )


async def load(
    name: str, base: str, headers: dict[str, str], workers: int, seconds: float, rows: int
) -> Figure:
    pages = max(1, rows // PAGE_SIZE)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def worker(until: float, record: bool) -> None:
            rng = random.Random()
            while time.perf_counter() < until:
                params = {"page": str(rng.randint(1, pages)), "page_size": str(PAGE_SIZE)}
                start = time.perf_counter()
                async with session.get(PATH, params=params) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{name}: HTTP {response.status}: {await response.text()}")
                if record:
                    latencies.append(time.perf_counter() - start)

        # Long enough for every pooled connection to reach psycopg's prepare threshold (5 uses).
        warmup = time.perf_counter() + min(5.0, seconds / 2)
        await asyncio.gather(*(worker(warmup, False) for _ in range(workers)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(workers)))
        elapsed = time.perf_counter() - start
    return Figure(name, len(latencies), elapsed, latencies)


async def bench(label: str, url: str, args: argparse.Namespace) -> None:
    from bots.http.auth import TokenType, issue_token, signing_key
    from storage.settings import get_settings

    ws = await populate(url, args.rows)
    token = issue_token(
        signing_key(get_settings().secret_key.get_secret_value()),
        user_id=ws.user_id,
        account_id=ws.account_id,
        typ=TokenType.ACCESS,
        ttl=None,
    )
    jwt_headers = {"Authorization": f"Bearer {token}"}
    best: dict[str, Figure] = {}
    for _ in range(args.runs):
        with server(serve_ours, url) as base:
            for name, headers in (("ours (JWT)", jwt_headers), ("ours (API key)", {"X-API-Key": ws.api_key})):
                fig = await load(name, base, headers, args.workers, args.seconds, args.rows)
                best[name] = max(best.get(name, fig), fig, key=lambda f: f.rate)
        with server(serve_bare, url) as base:
            headers = {"X-Account": str(ws.account_id)}
            fig = await load("bare aiohttp + Core", base, headers, args.workers, args.seconds, args.rows)
            best["bare"] = max(best.get("bare", fig), fig, key=lambda f: f.rate)
    print(
        f"\n{label}: {args.rows:,} keywords, page_size {PAGE_SIZE}, {args.workers} workers, "
        f"{args.seconds:.0f} s per run, best of {args.runs}"
    )
    for fig in best.values():
        print("  " + fig.line())
    ratio = best["ours (JWT)"].rate / best["bare"].rate
    verdict = "meets" if ratio >= TARGET_RATIO else "below"
    print(
        f"  ratio ours (JWT) / bare: {ratio:.2f} ({verdict} the {TARGET_RATIO} target); "
        f"p99 {best['ours (JWT)'].percentile(0.99):.1f} ms vs {best['bare'].percentile(0.99):.1f} ms"
    )


# --- main -----------------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def bench_postgres(args: argparse.Namespace) -> None:
    name = f"igny8_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(_libpq(args.postgres_url), autocommit=True, connect_timeout=5)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(upgrade, url)
        await bench("PostgreSQL", url, args)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


async def bench_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="igny8_bench_") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        await bench("SQLite", url, args)


async def main(args: argparse.Namespace) -> None:
    load_actions()
    if not args.skip_postgres:
        await bench_postgres(args)
    if not args.skip_sqlite:
        await bench_sqlite(args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000, help="keywords in the sector")
    parser.add_argument("--workers", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--runs", type=int, default=2, help="runs per figure; the best is reported")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
