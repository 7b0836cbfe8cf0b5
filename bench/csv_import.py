"""Benchmark: keyword CSV import (``keywords.import_csv``) against the database's own bulk loaders.

Run from the repo root::

    python bench/csv_import.py [--rows 100000] [--runs 3] [--postgres-url URL] [--skip-sqlite]

It writes a realistic keyword CSV (keyword, volume, difficulty, intent; unique keywords) to a temp
file, then:

* PostgreSQL (a fresh ``igny8_bench_<random>`` database, dropped at the end) times, interleaved:
  - ours: ``keywords.import_csv`` end to end through ``tools.registry.invoke`` (decode, parse,
    validate, tenancy checks, insert, commit), each run into a fresh site and sector;
  - raw COPY: ``COPY igny8_keywords (keyword, volume, difficulty, intent) FROM STDIN WITH (FORMAT
    csv, HEADER true)`` of the same file into a fresh sector (its site, sector, account and status
    supplied as temporary column defaults), so the same rows land in the same table with the same
    indexes, unique constraint and foreign-key checks. This is the ratio the target applies to;
  - for reference, the same COPY into a scratch table shaped like ``igny8_keywords`` (columns,
    defaults, unique constraint, indexes) but without its three foreign keys.
  Each run's rows are deleted (and the table vacuumed) before the next, untimed.
* SQLite (a temp file): ours the same way, and for reference plain ``sqlite3`` (csv.reader +
  executemany in one transaction) into a table with igny8_keywords' schema and indexes, no FKs.

Each figure is the best of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from tools import load_actions  # noqa: E402
from tools.accounts import create_account, tenant_for_user_id  # noqa: E402
from tools.registry import invoke  # noqa: E402

TARGET_RATIO = 0.30
DEFAULT_POSTGRES_URL = os.environ.get(
    "IGNY8_BENCH_POSTGRES_URL",
    os.environ.get("IGNY8_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)

# --- a realistic keyword file ------------------------------------------------------------------

_QUESTIONS = ("how to", "what is", "why do", "can you", "where to", "when to", "is it safe to", "how much")
_PREFIXES = ("best", "cheap", "top", "buy", "affordable", "professional", "diy", "organic", "used", "free")
_ADJECTIVES = (
    "wireless",
    "waterproof",
    "portable",
    "electric",
    "vegan",
    "gluten free",
    "lightweight",
    "smart",
    "stainless steel",
    "bamboo",
    "ergonomic",
    "solar",
    "vintage",
    "compact",
    "heavy duty",
    "kids",
)
_TOPICS = (
    "running shoes",
    "coffee grinder",
    "standing desk",
    "yoga mat",
    "dog food",
    "air fryer",
    "mattress",
    "laptop stand",
    "hiking boots",
    "protein powder",
    "car insurance",
    "web hosting",
    "crm software",
    "seo tools",
    "email marketing",
    "project management app",
    "vpn",
    "credit card",
    "mortgage calculator",
    "wedding dress",
    "garden hose",
    "electric bike",
    "noise cancelling headphones",
    "office chair",
    "baby stroller",
    "espresso machine",
    "water filter",
    "skin care routine",
    "meal prep containers",
    "gaming monitor",
    "home gym",
    "roof repair",
    "plumber",
    "dentist",
    "divorce lawyer",
    "tax accountant",
    "language course",
    "photo editor",
    "password manager",
    "accounting software",
    "kitchen knife",
    "road bike",
    "tent",
    "sleeping bag",
    "led bulbs",
    "smart thermostat",
    "robot vacuum",
    "pressure washer",
    "lawn mower",
    "cat litter",
)
_SUFFIXES = (
    "near me",
    "for beginners",
    "for women",
    "for men",
    "for small business",
    "review",
    "reviews",
    "price",
    "cost",
    "deals",
    "sale",
    "online",
    "uk",
    "usa",
    "2024",
    "2025",
    "comparison",
    "alternatives",
    "vs amazon",
    "under 100",
    "under 500",
    "with warranty",
    "for seniors",
    "on a budget",
)
_CITIES = (
    "london",
    "new york",
    "chicago",
    "austin",
    "berlin",
    "sydney",
    "toronto",
    "manchester",
    "denver",
    "seattle",
    "dublin",
    "miami",
)
_INTENTS = ("informational", "navigational", "commercial", "transactional")


def _phrase(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(_TOPICS)
    shape = rng.random()
    if shape < 0.2:
        return f"{rng.choice(_QUESTIONS)} {rng.choice(('choose', 'clean', 'fix', 'use'))} {topic}", (
            "informational"
        )
    if shape < 0.5:
        return f"{rng.choice(_PREFIXES)} {rng.choice(_ADJECTIVES)} {topic} {rng.choice(_SUFFIXES)}", (
            "commercial"
        )
    if shape < 0.7:
        return f"{rng.choice(_PREFIXES)} {topic} {rng.choice(_SUFFIXES)} {rng.choice(_CITIES)}", (
            "transactional"
        )
    if shape < 0.8:
        brand = rng.choice(("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"))
        return f"{brand} {topic} {rng.choice(('login', 'support', 'coupon', 'official site'))}", (
            "navigational"
        )
    return f"{rng.choice(_ADJECTIVES)} {topic} {rng.choice(_SUFFIXES)} {rng.choice(_SUFFIXES)}", (
        rng.choice(_INTENTS)
    )


def write_keyword_csv(path: Path, rows: int, seed: int = 8) -> None:
    """``rows`` unique, already-normalised keywords, so every loader stores exactly ``rows`` rows."""
    rng = random.Random(seed)
    seen: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["keyword", "volume", "difficulty", "intent"])
        while len(seen) < rows:
            keyword, intent = _phrase(rng)
            if keyword in seen:
                keyword = f"{keyword} {rng.randint(2, 999)}"  # model numbers, years, sizes…
                if keyword in seen:
                    continue
            seen.add(keyword)
            volume = "" if rng.random() < 0.05 else str(int(rng.lognormvariate(5, 1.8)))
            difficulty = "" if rng.random() < 0.05 else str(rng.randint(0, 100))
            writer.writerow([keyword, volume, difficulty, "" if rng.random() < 0.1 else intent])


# --- timing helpers -----------------------------------------------------------------------------


@dataclass
class Figure:
    label: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


Timed = Callable[[], Awaitable[tuple[int, float]]]


async def best_of_interleaved(runs: int, contenders: list[tuple[str, Timed]]) -> list[Figure]:
    """Run each contender once per round, ``runs`` rounds; keep each one's fastest run."""
    best: dict[str, Figure] = {}
    for i in range(runs):
        for label, once in contenders:
            gc.collect()
            stored, seconds = await once()
            rate = f"{stored / seconds:,.0f} rows/s"
            print(f"  {label:<36} run {i + 1}: {stored:,} rows in {seconds:.3f}s ({rate})")
            if label not in best or seconds < best[label].seconds:
                best[label] = Figure(label, stored, seconds)
    return [best[label] for label, _ in contenders]


def fmt(rate: float) -> str:
    return f"{rate:,.0f} rows/s"


# --- our import ---------------------------------------------------------------------------------


class OurImport:
    """An account with an owner; each run imports into a fresh site and sector of it."""

    def __init__(self, db: Database, data: bytes, expected: int) -> None:
        self.db = db
        self.data = data
        self.expected = expected
        self.owner = None
        self.n = 0
        self.progress_events = 0

    async def setup(self) -> None:
        made = await create_account(
            self.db, name="Bench", plan="scale", email=f"bench-{uuid.uuid4().hex[:8]}@example.com"
        )
        self.owner = await tenant_for_user_id(self.db, made.user_id)

    async def fresh_sector(self) -> tuple[int, int]:
        self.n += 1
        site = await invoke("sites.create", {"name": f"Bench site {self.n}"}, db=self.db, tenant=self.owner)
        sector = await invoke(
            "sectors.create", {"site_id": site.id, "name": "Main"}, db=self.db, tenant=self.owner
        )
        return site.id, sector.id

    async def _progress(self, _event: object) -> None:
        self.progress_events += 1

    async def once(self) -> tuple[int, float]:
        site_id, sector_id = await self.fresh_sector()
        args = {"site_id": site_id, "sector_id": sector_id, "file": self.data}
        start = time.perf_counter()
        result = await invoke(
            "keywords.import_csv", args, db=self.db, tenant=self.owner, progress=self._progress
        )
        seconds = time.perf_counter() - start
        if result.imported != self.expected or result.errors_count or result.duplicates_skipped:
            raise SystemExit(f"unexpected import result: {result!r}")
        return result.imported, seconds


# --- PostgreSQL ---------------------------------------------------------------------------------

SCRATCH = "bench_keywords_plain"
COPY_COLUMNS = "keyword, volume, difficulty, intent"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _set_placement_defaults(
    conn: psycopg.Connection, table: str, placement: tuple[int, int, int] | None
) -> None:
    """Column defaults standing in for what the import sets per row (the file has no such columns)."""
    if placement is None:
        clause = (
            "ALTER COLUMN site_id DROP DEFAULT, ALTER COLUMN sector_id DROP DEFAULT,"
            " ALTER COLUMN account_id DROP DEFAULT, ALTER COLUMN status DROP DEFAULT"
        )
        conn.execute(sql.SQL("ALTER TABLE {} " + clause).format(sql.Identifier(table)))
        return
    site, sector, account = placement
    conn.execute(
        sql.SQL(
            "ALTER TABLE {t} ALTER COLUMN site_id SET DEFAULT {site},"
            " ALTER COLUMN sector_id SET DEFAULT {sector}, ALTER COLUMN account_id SET DEFAULT {account},"
            " ALTER COLUMN status SET DEFAULT 'pending'"
        ).format(
            t=sql.Identifier(table),
            site=sql.Literal(site),
            sector=sql.Literal(sector),
            account=sql.Literal(account),
        )
    )


def _create_plain_table(url: str) -> None:
    """igny8_keywords' columns, defaults, unique constraint and indexes, but no foreign keys."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCRATCH)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE igny8_keywords INCLUDING ALL)").format(sql.Identifier(SCRATCH))
        )
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ALTER COLUMN id DROP DEFAULT,"
                " ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"
            ).format(sql.Identifier(SCRATCH))
        )
        _set_placement_defaults(conn, SCRATCH, (1, 1, 1))


def _copy_once(
    url: str, data: bytes, table: str, placement: tuple[int, int, int] | None
) -> tuple[int, float]:
    """Raw COPY of the file into ``table``; with ``placement``, igny8_keywords for a fresh sector."""
    with psycopg.connect(_libpq(url), autocommit=True) as admin:
        if placement is None:
            admin.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        else:
            _set_placement_defaults(admin, table, placement)
    statement = sql.SQL("COPY {} (" + COPY_COLUMNS + ") FROM STDIN WITH (FORMAT csv, HEADER true)").format(
        sql.Identifier(table)
    )
    try:
        with psycopg.connect(_libpq(url)) as conn:
            start = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(statement) as copy:
                    view = memoryview(data)
                    for i in range(0, len(view), 1 << 20):
                        copy.write(view[i : i + (1 << 20)])
                stored = cur.rowcount
            conn.commit()
            return stored, time.perf_counter() - start
    finally:
        if placement is not None:
            with psycopg.connect(_libpq(url), autocommit=True) as admin:
                _set_placement_defaults(admin, table, None)


def _digest(url: str) -> str:
    """What igny8_keywords holds (before it is cleared), to check both loaders stored the same rows."""
    with psycopg.connect(_libpq(url)) as conn:
        row = conn.execute(
            "SELECT count(*) || ':' || md5(string_agg(concat_ws('|', keyword, volume, difficulty, intent,"
            " status, account_id), ',' ORDER BY keyword)) FROM igny8_keywords"
        ).fetchone()
        return str(row[0]) if row else ""


def _clear(url: str, table: str) -> None:
    """Empty the table between runs (not timed), so each run starts from the same state."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


async def bench_postgres(admin_url: str, data: bytes, expected: int, runs: int) -> None:
    name = f"igny8_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=5)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    db: Database | None = None
    try:
        print(f"PostgreSQL: database {name}")
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(_create_plain_table, url)
        db = Database(url)
        ours = OurImport(db, data, expected)
        await ours.setup()
        assert ours.owner is not None

        stored: dict[str, str] = {}

        async def our_once() -> tuple[int, float]:
            result = await ours.once()
            stored.setdefault("ours", await asyncio.to_thread(_digest, url))
            await asyncio.to_thread(_clear, url, "igny8_keywords")
            return result

        async def copy_once() -> tuple[int, float]:
            assert ours.owner is not None
            site_id, sector_id = await ours.fresh_sector()
            placement = (site_id, sector_id, ours.owner.account_id)
            result = await asyncio.to_thread(_copy_once, url, data, "igny8_keywords", placement)
            stored.setdefault("copy", await asyncio.to_thread(_digest, url))
            await asyncio.to_thread(_clear, url, "igny8_keywords")
            return result

        async def plain_once() -> tuple[int, float]:
            return await asyncio.to_thread(_copy_once, url, data, SCRATCH, None)

        # Interleaved, so load from anything else on the machine hits all three alike.
        our, raw, plain = await best_of_interleaved(
            runs,
            [
                ("ours (keywords.import_csv)", our_once),
                ("raw COPY into igny8_keywords", copy_once),
                ("raw COPY into plain table (no FKs)", plain_once),
            ],
        )
        if stored["ours"] != stored["copy"]:
            raise SystemExit(f"ours and COPY stored different rows: {stored}")
        print(f"  both stored the same {stored['ours'].split(':')[0]} rows (count and md5 of their values)")
        ratio = our.rate / raw.rate
        verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(
            f"postgresql  ours: {fmt(our.rate)}   raw COPY: {fmt(raw.rate)}   "
            f"ratio: {ratio:.2f} (target >= {TARGET_RATIO:.2f}) {verdict}"
        )
        print(
            f"postgresql  (reference) raw COPY into a plain table without the 3 foreign keys: "
            f"{fmt(plain.rate)}   ours/that: {our.rate / plain.rate:.2f}"
        )
    finally:
        if db is not None:
            await db.dispose()
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


# --- SQLite -------------------------------------------------------------------------------------


def _sqlite_baseline_once(db_path: Path, csv_path: Path, schema: list[str]) -> tuple[int, float]:
    """csv.reader + executemany into a table with igny8_keywords' schema (no FKs), one transaction."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("DROP TABLE IF EXISTS bench_keywords")
        for statement in schema:
            conn.execute(statement)
        start = time.perf_counter()
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            conn.execute("BEGIN")
            cur = conn.executemany(
                "INSERT OR IGNORE INTO bench_keywords (keyword, volume, difficulty, intent, status,"
                " sector_id, site_id, account_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', 1, 1, 1, ?, ?)",
                ((k, v or None, d or None, i or None, now, now) for k, v, d, i in reader),
            )
            conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        return cur.rowcount, seconds
    finally:
        conn.close()


def _sqlite_schema(db_path: Path) -> list[str]:
    """igny8_keywords' CREATE TABLE (without foreign keys) and CREATE INDEX statements, renamed."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'igny8_keywords' AND sql IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    statements = []
    for kind, text in rows:
        text = text.replace("igny8_keywords", "bench_keywords")
        if kind == "table":
            lines = [line for line in text.splitlines() if "FOREIGN KEY" not in line]
            text = "\n".join(lines).replace(",\n)", "\n)")
        statements.append(text)
    return statements


def _sqlite_clear(db_path: Path) -> None:
    """Empty igny8_keywords between runs (not timed), like the baseline's fresh table."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("DELETE FROM igny8_keywords")
        conn.execute("VACUUM")
    finally:
        conn.close()


async def bench_sqlite(data: bytes, csv_path: Path, expected: int, runs: int, tmp: Path) -> None:
    db_path = tmp / "bench.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    print(f"SQLite: {db_path}")
    await asyncio.to_thread(upgrade, url)
    schema = _sqlite_schema(db_path)
    base_path = tmp / "baseline.db"
    db = Database(url)
    try:
        ours = OurImport(db, data, expected)
        await ours.setup()

        async def our_once() -> tuple[int, float]:
            result = await ours.once()
            await asyncio.to_thread(_sqlite_clear, db_path)
            return result

        our, base = await best_of_interleaved(
            runs,
            [
                ("ours (keywords.import_csv)", our_once),
                (
                    "sqlite3 executemany (same schema)",
                    lambda: asyncio.to_thread(_sqlite_baseline_once, base_path, csv_path, schema),
                ),
            ],
        )
    finally:
        await db.dispose()
    print(
        f"sqlite      ours: {fmt(our.rate)}   sqlite3 executemany: {fmt(base.rate)}   "
        f"ratio: {our.rate / base.rate:.2f} (reference)"
    )


# --- main ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    load_actions()
    with tempfile.TemporaryDirectory(prefix="igny8_bench_") as tmpdir:
        tmp = Path(tmpdir)
        csv_path = tmp / "keywords.csv"
        write_keyword_csv(csv_path, args.rows)
        data = csv_path.read_bytes()
        print(
            f"CSV: {args.rows:,} rows, {len(data) / 1e6:.1f} MB ({csv_path.name}); best of {args.runs} runs"
        )
        if not args.skip_postgres:
            await bench_postgres(args.postgres_url, data, args.rows, args.runs)
        if not args.skip_sqlite:
            await bench_sqlite(data, csv_path, args.rows, args.runs, tmp)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="keywords in the generated CSV")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the best is reported")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server to create the scratch database on (default: %(default)s)",
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
