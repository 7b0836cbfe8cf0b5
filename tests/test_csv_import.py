"""keywords.import_csv and keywords.export_csv: forgiving about files, strict about rows."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from storage.db import Database
from storage.exceptions import NotFound, PermissionDenied
from storage.models import Role
from tests.factories import Tenant, TenantFactory
from tests.planner_support import field_error, new_cluster, new_sector, new_site
from tools.planner import csv_io
from tools.registry import ProgressEvent, invoke


async def import_csv(t: Tenant, data: bytes | str, sector_id: int | None = None, **kw: Any) -> Any:
    raw = data.encode() if isinstance(data, str) else data
    return await t.run(
        "keywords.import_csv", site_id=t.site_id, sector_id=sector_id or t.sector_id, file=raw, **kw
    )


async def stored(t: Tenant, sector_id: int | None = None) -> dict[str, Any]:
    page = await t.run("keywords.list", sector_id=sector_id or t.sector_id, page_size=500)
    return {k.keyword: k for k in page.results}


def errors_of(result: Any) -> list[tuple[int, str]]:
    return [(e.line, e.field) for e in result.errors]


# --- reading the file --------------------------------------------------------------------------


async def test_import_reads_every_column(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(
        t,
        "keyword,volume,difficulty,intent,status\n"
        'Running  Shoes,"1,200",45,Commercial,active\n'
        "trail shoes,,,,\n"
        "buy socks,12.0,7%,transactional,ARCHIVED\n",
    )
    assert (result.total_rows, result.imported, result.duplicates_skipped, result.errors_count) == (
        3,
        3,
        0,
        0,
    )
    assert (result.encoding, result.delimiter) == ("utf-8", ",")
    assert result.columns == {n: n for n in ("keyword", "volume", "difficulty", "intent", "status")}
    rows = await stored(t)
    assert {k: (v.volume, v.difficulty, v.intent, v.status) for k, v in rows.items()} == {
        "running shoes": (1200, 45, "commercial", "active"),
        "trail shoes": (None, None, None, "pending"),
        "buy socks": (12, 7, "transactional", "archived"),
    }


async def test_import_strips_utf8_bom_from_the_header(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(t, "\ufeffKeyword,Volume\ncafé crème,10\n".encode())
    assert (result.imported, result.encoding, result.columns) == (
        1,
        "utf-8",
        {"keyword": "Keyword", "volume": "Volume"},
    )
    assert list(await stored(t)) == ["café crème"]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
async def test_import_detects_the_delimiter(tenants: TenantFactory, delimiter: str) -> None:
    t = await tenants.create()
    lines = [
        ["Keyword", "Search Volume", "KD"],
        ["shoes, running", "1200", "35"],
        ["boots, hiking", "80", ""],
    ]
    result = await import_csv(t, "".join(delimiter.join(cells) + "\r\n" for cells in lines))
    assert (result.delimiter, result.imported, result.errors_count) == (delimiter, 2, 0)
    rows = await stored(t)
    assert {k: (v.volume, v.difficulty) for k, v in rows.items()} == {
        "shoes, running": (1200, 35),
        "boots, hiking": (80, None),
    }


async def test_import_keeps_commas_and_quotes_inside_quoted_fields(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(t, 'keyword,volume\n"shoes, running",100\n"the ""best"" shoes",5\n"a,b,c",\n')
    assert (result.delimiter, result.imported, result.errors_count) == (",", 3, 0)
    assert sorted(await stored(t)) == ["a,b,c", "shoes, running", 'the "best" shoes']


@pytest.mark.parametrize(
    ("header", "columns"),
    [
        ("Keyword,Search Volume,KD", {"keyword": "Keyword", "volume": "Search Volume", "difficulty": "KD"}),
        (
            "Keyword,Avg. monthly searches,Keyword Difficulty",
            {"keyword": "Keyword", "volume": "Avg. monthly searches", "difficulty": "Keyword Difficulty"},
        ),
        ("Query,Volume,KD %", {"keyword": "Query", "volume": "Volume", "difficulty": "KD %"}),
        (
            " KEYPHRASE ,SV,SEO-Difficulty",
            {"keyword": " KEYPHRASE ", "volume": "SV", "difficulty": "SEO-Difficulty"},
        ),
        (
            "Search Term,Searches,Difficulty",
            {"keyword": "Search Term", "volume": "Searches", "difficulty": "Difficulty"},
        ),
    ],
)
async def test_import_understands_header_aliases(
    tenants: TenantFactory, header: str, columns: dict[str, str]
) -> None:
    t = await tenants.create()
    result = await import_csv(t, f"{header}\nshoes,100,40\n")
    assert (result.columns, result.imported) == (columns, 1)
    shoes = (await stored(t))["shoes"]
    assert (shoes.volume, shoes.difficulty) == (100, 40)


async def test_import_ignores_unknown_columns_and_uses_the_first_alias(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(t, "Position,Keyword,Volume,Search Volume,URL\n1,shoes,10,99,https://x\n")
    assert result.columns == {"keyword": "Keyword", "volume": "Volume"}
    assert (await stored(t))["shoes"].volume == 10


@pytest.mark.parametrize(
    "data",
    [b"term_a,volume\nshoes,1\n", b"volume;difficulty\n1;2\n", b"\n\n\n", b"shoes\n"],
)
async def test_import_without_a_keyword_column_names_file(tenants: TenantFactory, data: bytes) -> None:
    t = await tenants.create()
    error = await field_error(import_csv(t, data), "file")
    assert "keyword" in error.message
    assert await stored(t) == {}


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\xff\xfe"])
async def test_import_of_an_empty_file_names_file(tenants: TenantFactory, data: bytes) -> None:
    t = await tenants.create()
    await field_error(import_csv(t, data), "file")


async def test_import_of_a_header_alone_imports_nothing(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(t, "keyword,volume\n")
    assert (result.total_rows, result.imported, result.errors) == (0, 0, [])


# --- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "reported"), [("cp1252", "cp1252"), ("latin-1", "cp1252"), ("utf-8", "utf-8")]
)
async def test_import_decodes_legacy_encodings(tenants: TenantFactory, encoding: str, reported: str) -> None:
    t = await tenants.create()
    result = await import_csv(t, "keyword,volume\ncafé,10\nnaïve,20\nCRÈME brûlée,30\n".encode(encoding))
    assert (result.encoding, result.imported) == (reported, 3)
    assert sorted(await stored(t)) == ["café", "crème brûlée", "naïve"]


async def test_import_falls_back_to_latin1_for_bytes_cp1252_lacks(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(t, "keyword\ncafé\x81\n€uro\n".encode("latin-1", errors="replace"))
    assert result.encoding == "latin-1"
    assert sorted(await stored(t)) == ["?uro", "café"]  # U+0081 is a control character, dropped


async def test_import_reads_cp1252_only_characters(tenants: TenantFactory) -> None:
    t = await tenants.create()
    result = await import_csv(t, "keyword\n€uro deals\n“quoted” words\n".encode("cp1252"))
    assert result.encoding == "cp1252"
    assert sorted(await stored(t)) == ["“quoted” words", "€uro deals"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
async def test_import_reads_utf16_with_bom(tenants: TenantFactory, codec: str) -> None:
    """Google Keyword Planner exports UTF-16, tab-separated."""
    t = await tenants.create()
    text = "Keyword\tAvg. monthly searches\nnaïve café\t1 000\nschuhe größe 42\t50\n"
    bom = {"utf-16": "", "utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}[codec]
    result = await import_csv(t, (bom + text).encode(codec))
    assert (result.encoding, result.delimiter, result.imported) == ("utf-16", "\t", 2)
    assert {k: v.volume for k, v in (await stored(t)).items()} == {"naïve café": 1000, "schuhe größe 42": 50}


# --- row errors and duplicates -----------------------------------------------------------------


async def test_bad_rows_are_reported_with_physical_line_numbers(tenants: TenantFactory) -> None:
    t = await tenants.create()
    lines = [
        "keyword,volume,difficulty,intent",  # 1
        "good one,10,20,commercial",  # 2
        "bad volume,lots,20,",  # 3
        "too hard,10,150,",  # 4
        "",  # 5 (blank: skipped, still counted as a line)
        "odd intent,10,10,curious",  # 6
        ",10,10,",  # 7 (empty keyword)
        '"multi',  # 8 (a record over two lines, reported at its first)
        'line",-5,5,',  # 9
        '"fine over',  # 10
        'two lines",5,5,',  # 11
        "huge,1e400,,",  # 12
        "too big,2147483648,,",  # 13
        "\x00\x01,1,1,",  # 14 (nothing visible)
        "good two,,,",  # 15
        "many faults,x,y,z",  # 16
    ]
    result = await import_csv(t, "\r\n".join(lines) + "\r\n")
    assert errors_of(result) == [
        (3, "volume"),
        (4, "difficulty"),
        (6, "intent"),
        (7, "keyword"),
        (8, "volume"),
        (12, "volume"),
        (13, "volume"),
        (14, "keyword"),
        (16, "volume"),
        (16, "difficulty"),
        (16, "intent"),
    ]
    messages = {(e.line, e.field): e.message for e in result.errors}
    assert "150" in messages[(4, "difficulty")]
    assert "'curious'" in messages[(6, "intent")]
    assert "'lots'" in messages[(3, "volume")]
    assert (result.total_rows, result.imported, result.errors_count) == (12, 3, 11)
    assert result.rows_rejected == 9, "line 16 has three errors but is one row"
    assert result.total_rows == result.imported + result.duplicates_skipped + result.rows_rejected
    assert sorted(await stored(t)) == ["fine over two lines", "good one", "good two"]


async def test_only_the_first_errors_are_listed_but_all_are_counted(tenants: TenantFactory) -> None:
    t = await tenants.create()
    body = "".join(f"kw {n},lots\n" for n in range(150))
    result = await import_csv(t, "keyword,volume\n" + body + "fine,1\n")
    assert (result.errors_count, len(result.errors), result.imported) == (150, csv_io.MAX_REPORTED_ERRORS, 1)
    assert result.errors[-1].line == csv_io.MAX_REPORTED_ERRORS + 1


async def test_a_runaway_quote_is_a_file_error_not_a_crash(tenants: TenantFactory) -> None:
    t = await tenants.create()
    data = 'keyword,volume\nshoes,1\n"never closed,2\n' + "more,3\n" * 30_000
    error = await field_error(import_csv(t, data), "file")
    assert "line 3" in error.message
    assert await stored(t) == {}


async def test_duplicates_in_the_file_and_in_the_sector_are_skipped_and_counted(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    await t.keywords("shoes", volume=1)
    other_sector = await new_sector(t)
    await t.keywords("boots", sector_id=other_sector)
    result = await import_csv(
        t, "keyword,volume\nshoes,50\nBoots,10\n boots ,20\nsocks,5\nSHOES,60\nsocks,7\n"
    )
    assert (result.total_rows, result.imported, result.duplicates_skipped, result.errors_count) == (
        6,
        2,
        4,
        0,
    )
    rows = await stored(t)
    assert {k: v.volume for k, v in rows.items()} == {"shoes": 1, "boots": 10, "socks": 5}
    again = await import_csv(t, "keyword\nshoes\nboots\nsocks\n")
    assert (again.imported, again.duplicates_skipped) == (0, 3)


async def test_a_ten_megabyte_file_imports_completely(tenants: TenantFactory) -> None:
    t = await tenants.create()
    rows = 250_000
    intents = ("informational", "commercial", "transactional", "navigational", "")
    body = "".join(f"large import keyword {n},{n % 90_000},{n % 101},{intents[n % 5]}\n" for n in range(rows))
    data = ("keyword,volume,difficulty,intent\n" + body + "Large Import Keyword 7,1,1,\n").encode()
    assert len(data) >= 10_000_000
    events: list[ProgressEvent] = []
    result = await invoke(
        "keywords.import_csv",
        {"site_id": t.site_id, "sector_id": t.sector_id, "file": data},
        db=t.db,
        tenant=t.owner,
        progress=_collect(events),
    )
    assert (result.total_rows, result.imported, result.duplicates_skipped, result.errors_count) == (
        rows + 1,
        rows,
        1,
        0,
    )
    assert (await t.run("keywords.list", sector_id=t.sector_id, page_size=1)).count == rows
    assert (await t.run("keywords.list", difficulty_min=100, page_size=1)).count == len(range(100, rows, 101))
    assert events[-1].done == events[-1].total == rows


# --- where it goes, and atomicity --------------------------------------------------------------


async def test_import_checks_the_sector_belongs_to_the_site(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    other_site = await new_site(t)
    foreign_sector = await new_sector(t, other_site)
    data = b"keyword\nshoes\n"
    await field_error(import_csv(t, data, sector_id=foreign_sector), "sector_id")
    with pytest.raises(NotFound):
        await import_csv(t, data, sector_id=u.sector_id)
    with pytest.raises(NotFound):
        await t.run("keywords.import_csv", site_id=u.site_id, sector_id=u.sector_id, file=data)
    await field_error(
        t.run("keywords.import_csv", site_id=u.site_id, sector_id=t.sector_id, file=data), "sector_id"
    )
    await field_error(t.run("keywords.import_csv", site_id=t.site_id, sector_id=t.sector_id), "file")
    assert await stored(t) == {} and await stored(u) == {}


async def test_viewer_cannot_import(tenants: TenantFactory) -> None:
    t = await tenants.create()
    viewer = await t.user(Role.VIEWER, site_ids=(t.site_id,))
    with pytest.raises(PermissionDenied):
        await t.run(
            "keywords.import_csv", as_=viewer, site_id=t.site_id, sector_id=t.sector_id, file=b"keyword\nx\n"
        )


def _collect(events: list[ProgressEvent]) -> Any:
    async def sink(event: ProgressEvent) -> None:
        events.append(event)

    return sink


async def test_import_reports_progress_per_chunk(
    tenants: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await tenants.create()
    monkeypatch.setattr(csv_io, "INSERT_CHUNK", 2)
    events: list[ProgressEvent] = []
    await invoke(
        "keywords.import_csv",
        {"site_id": t.site_id, "sector_id": t.sector_id, "file": b"keyword\na\nb\nc\nd\ne\nf\n"},
        db=t.db,
        tenant=t.owner,
        progress=_collect(events),
    )
    assert [(e.action, e.phase, e.done, e.total) for e in events] == [
        ("keywords.import_csv", "parsed", 0, 6),
        ("keywords.import_csv", "importing", 2, 6),
        ("keywords.import_csv", "importing", 4, 6),
        ("keywords.import_csv", "importing", 6, 6),
    ]
    assert "6 rows" in events[0].message


BOOM = "explode in the second chunk"


@pytest.fixture
async def exploding_keyword(db: Database) -> AsyncIterator[str]:
    """A real database error for one keyword: a trigger refusing it, like a CHECK constraint would."""
    if db.backend == "postgresql":
        create = [
            "CREATE FUNCTION igny8_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'refused by test trigger'; END $$",
            "CREATE TRIGGER igny8_test_refuse BEFORE INSERT ON igny8_keywords FOR EACH ROW "
            f"WHEN (NEW.keyword = '{BOOM}') EXECUTE FUNCTION igny8_test_refuse()",
        ]
        drop = ["DROP TRIGGER igny8_test_refuse ON igny8_keywords", "DROP FUNCTION igny8_test_refuse()"]
    else:
        create = [
            "CREATE TRIGGER igny8_test_refuse BEFORE INSERT ON igny8_keywords "
            f"WHEN NEW.keyword = '{BOOM}' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        ]
        drop = ["DROP TRIGGER igny8_test_refuse"]
    async with db.engine.begin() as conn:
        for sql in create:
            await conn.exec_driver_sql(sql)
    try:
        yield BOOM
    finally:
        async with db.engine.begin() as conn:
            for sql in drop:
                await conn.exec_driver_sql(sql)


async def test_a_database_error_mid_import_leaves_nothing_behind(
    tenants: TenantFactory, monkeypatch: pytest.MonkeyPatch, exploding_keyword: str
) -> None:
    t = await tenants.create()
    await t.keywords("already here")
    monkeypatch.setattr(csv_io, "INSERT_CHUNK", 3)
    words = ["one", "two", "three", "four", exploding_keyword, "six", "seven"]
    data = ("keyword\n" + "\n".join(words) + "\n").encode()
    events: list[ProgressEvent] = []
    with pytest.raises(DBAPIError, match="refused by test trigger"):
        await invoke(
            "keywords.import_csv",
            {"site_id": t.site_id, "sector_id": t.sector_id, "file": data},
            db=t.db,
            tenant=t.owner,
            progress=_collect(events),
        )
    assert [(e.phase, e.done) for e in events] == [("parsed", 0), ("importing", 3)]  # chunk 1 was written
    assert list(await stored(t)) == ["already here"]
    result = await import_csv(t, data.replace(exploding_keyword.encode(), b"five"))
    assert result.imported == 7


# --- export ------------------------------------------------------------------------------------


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def _export_fixture(t: Tenant) -> dict[str, int]:
    a = await new_cluster(t, "Zeta")
    b = await new_cluster(t, "Alpha")
    await t.keywords(
        "shoes, running", volume=100, difficulty=40, intent="commercial", cluster_ids=[a.id, b.id]
    )
    await t.keywords("boots", volume=5, status="archived", cluster_ids=[a.id])
    await t.keywords('say "hi"')
    other = await new_sector(t)
    await t.keywords("elsewhere", sector_id=other, volume=1)
    return {"cluster": a.id, "other_sector": other}


async def test_export_returns_csv_with_every_column(tenants: TenantFactory) -> None:
    t = await tenants.create()
    await _export_fixture(t)
    result = await t.run("keywords.export_csv", sector_id=t.sector_id)
    header, *_ = result.csv.splitlines()
    assert header == ",".join(csv_io.EXPORT_COLUMNS)
    rows = parse(result.csv)
    assert result.rows == len(rows) == 3
    first = rows[0]
    assert {k: v for k, v in first.items() if k != "created_at"} == {
        "keyword": "shoes, running",
        "volume": "100",
        "difficulty": "40",
        "intent": "commercial",
        "status": "pending",
        "clusters": "Alpha|Zeta",
        "site_id": str(t.site_id),
        "sector_id": str(t.sector_id),
    }
    assert first["created_at"].endswith("+00:00")
    assert [r["keyword"] for r in rows] == ["shoes, running", "boots", 'say "hi"']
    assert (rows[2]["volume"], rows[2]["intent"], rows[2]["clusters"]) == ("", "", "")


async def test_export_respects_filters_and_ordering(tenants: TenantFactory) -> None:
    t = await tenants.create()
    ids = await _export_fixture(t)

    async def exported(**args: Any) -> list[str]:
        return [r["keyword"] for r in parse((await t.run("keywords.export_csv", **args)).csv)]

    assert len(await exported()) == 4
    assert await exported(status="archived") == ["boots"]
    assert await exported(cluster_id=ids["cluster"]) == ["shoes, running", "boots"]
    assert await exported(sector_id=ids["other_sector"]) == ["elsewhere"]
    assert await exported(search="BOOT") == ["boots"]
    assert await exported(volume_min=5, ordering="-volume") == ["shoes, running", "boots"]
    assert await exported(ordering="volume") == ["elsewhere", "boots", "shoes, running", 'say "hi"']
    assert await exported(intent="navigational") == []
    await field_error(t.run("keywords.export_csv", ordering="colour"), "ordering")
    await field_error(t.run("keywords.export_csv", page=2), "page")
    u = await tenants.create()
    assert parse((await u.run("keywords.export_csv")).csv) == []


async def test_export_streams_through_the_chunk_sink(
    tenants: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await tenants.create()
    await t.keywords(*(f"kw {n}" for n in range(5)), volume=3)
    whole = (await t.run("keywords.export_csv")).csv
    monkeypatch.setattr(csv_io, "EXPORT_CHUNK", 2)
    chunks: list[str] = []

    async def sink(chunk: str) -> None:
        chunks.append(chunk)

    viewer = await t.user(Role.VIEWER, site_ids=(t.site_id,))
    result = await invoke("keywords.export_csv", {}, db=t.db, tenant=viewer, chunks=sink)
    assert (result.rows, result.csv) == (5, None)
    assert chunks[0] == ",".join(csv_io.EXPORT_COLUMNS) + "\n"
    assert [len(parse(chunks[0] + c)) for c in chunks[1:]] == [2, 2, 1]
    assert "".join(chunks) == whole


async def test_export_then_import_round_trips(tenants: TenantFactory) -> None:
    t = await tenants.create()
    await _export_fixture(t)
    exported = (await t.run("keywords.export_csv", sector_id=t.sector_id)).csv
    target = await new_sector(t)
    result = await import_csv(t, exported, sector_id=target)
    assert (result.imported, result.errors_count) == (3, 0)
    before, after = await stored(t), await stored(t, target)
    assert {k: (v.volume, v.difficulty, v.intent, v.status) for k, v in after.items()} == {
        k: (v.volume, v.difficulty, v.intent, v.status) for k, v in before.items()
    }


async def test_title_lines_above_the_header_are_skipped(tenants):
    t = await tenants.create()
    planner_export = (
        "Keyword Stats 2026-11-01 at 10_00_00\nAll locations\nKeyword,Avg. monthly searches\nshoes,100\n"
    )
    out = await t.run(
        "keywords.import_csv", site_id=t.site_id, sector_id=t.sector_id, file=planner_export.encode()
    )
    assert out.imported == 1 and out.columns == {"keyword": "Keyword", "volume": "Avg. monthly searches"}


async def test_export_neutralises_spreadsheet_formulas(tenants):
    t = await tenants.create()
    await t.run(
        "keywords.import_csv",
        site_id=t.site_id,
        sector_id=t.sector_id,
        file=b'keyword\n"=HYPERLINK(""http://x"")"\n@sum\nplain\n',
    )
    exported = (await t.run("keywords.export_csv")).csv
    assert "'=hyperlink" in exported and "'@sum" in exported and "\nplain," in exported
