"""Keyword CSV import and export.

Import is forgiving about the file (BOM, legacy encodings, ``;``/tab delimiters, header aliases
from common SEO tools) and strict about rows: each bad row is reported with its line number and
skipped; duplicates (in the file or already in the sector) are skipped and counted. The whole
import is one transaction, so a database error leaves nothing half-imported.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import selectinload

from storage.bulk import insert_skipping_duplicates
from storage.exceptions import ValidationFailed
from storage.models import Intent, Keyword, KeywordStatus, Sector
from tools import billing
from tools.common import MAX_INT, ObjectId, get_or_404, order_by
from tools.planner.keywords import (
    KEYWORD_MAX_LENGTH,
    MODULE,
    ORDERING,
    KeywordFilters,
    filtered_keywords,
    normalise_keyword,
)
from tools.registry import ALL_ROLES, ActionContext, ActionInput, Route, action

MAX_REPORTED_ERRORS = 100
INSERT_CHUNK = 5_000
EXPORT_CHUNK = 1_000
EXPORT_COLUMNS = (
    "keyword",
    "volume",
    "difficulty",
    "intent",
    "status",
    "clusters",
    "site_id",
    "sector_id",
    "created_at",
)

# Header spellings seen in exports from Google Keyword Planner, Ahrefs, Semrush and spreadsheets.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "keyword": ("keyword", "keywords", "query", "searchterm", "term", "phrase", "keyphrase"),
    "volume": ("volume", "searchvolume", "avgmonthlysearches", "monthlyvolume", "sv", "searches"),
    "difficulty": ("difficulty", "kd", "keyworddifficulty", "kdpercent", "seodifficulty"),
    "intent": ("intent", "searchintent", "keywordintent"),
    "status": ("status",),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in HEADER_ALIASES.items() for alias in aliases}


class RowError(BaseModel):
    line: int
    field: str
    message: str


class ImportResult(BaseModel):
    total_rows: int = Field(description="Data rows read from the file")
    imported: int
    duplicates_skipped: int
    rows_rejected: int = Field(description="Rows not imported because of errors (see errors)")
    errors_count: int = Field(description="Errors found; one rejected row may have several")
    errors: list[RowError] = Field(description=f"First {MAX_REPORTED_ERRORS} row errors")
    encoding: str
    delimiter: str
    columns: dict[str, str] = Field(description="Our field -> the file's header it was read from")


class ImportInput(ActionInput):
    site_id: ObjectId
    sector_id: ObjectId
    file: bytes = Field(description="CSV file content; needs a keyword column")


class ExportInput(KeywordFilters):
    ordering: str | None = None


class ExportResult(BaseModel):
    rows: int
    csv: str | None = Field(None, description="The CSV itself when it was not streamed")


def decode(data: bytes) -> tuple[str, str]:
    """Return text and the encoding used: UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(text: str) -> str:
    sample = "\n".join(text[:20_000].splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def map_headers(header: list[str]) -> dict[str, int]:
    """Our field name -> column index, matching header spellings loosely."""
    mapping: dict[str, int] = {}
    for index, raw in enumerate(header):
        key = re.sub(r"[^a-z0-9]", "", raw.lower().replace("%", "percent"))
        field = _ALIAS_TO_FIELD.get(key)
        if field and field not in mapping:
            mapping[field] = index
    if "keyword" not in mapping:
        shown = ", ".join(repr(h) for h in header[:10]) or "none"
        raise ValidationFailed.single(
            "file", f"no keyword column found (headers: {shown}); name one 'keyword'"
        )
    return mapping


def _int(value: str, low: int, high: int) -> int | None:
    cleaned = value.strip().replace(",", "").replace(" ", "").replace("%", "")
    if not cleaned or cleaned in ("-", "n/a", "N/A"):
        return None
    try:
        number = int(float(cleaned))
    except OverflowError:  # "1e400" and "inf" parse as floats but are no count
        raise ValueError(f"{value.strip()!r} is not a valid number") from None
    if not low <= number <= high:
        raise ValueError(f"must be between {low} and {high}, got {number}")
    return number


# Parsed cells are plain str/int/None, not enum members: a dict holding only those is not tracked
# by the garbage collector, which would otherwise rescan every parsed row again and again.
_PARSERS: dict[str, Any] = {
    "volume": lambda v: _int(v, 0, MAX_INT),
    "difficulty": lambda v: _int(v, 0, 100),
    "intent": lambda v: Intent(v.strip().lower()).value if v.strip() else None,
    "status": lambda v: KeywordStatus(v.strip().lower()).value if v.strip() else _PENDING,
}
_PENDING = KeywordStatus.PENDING.value


_MEMO_LIMIT = 10_000


def _memoised(parse: Any) -> Any:
    """``parse`` remembering its results: a column's cells repeat (intents, 0-100 difficulties)."""
    memo: dict[str, Any] = {}

    def cached(value: str) -> Any:
        try:
            return memo[value]
        except KeyError:
            pass
        result = parse(value)  # a ValueError is reported for the row and not remembered
        if len(memo) < _MEMO_LIMIT:
            memo[value] = result
        return result

    return cached


@dataclass
class ParsedRows:
    rows: list[dict[str, Any]]
    total: int
    in_file_duplicates: int
    rejected: int
    errors: list[RowError]
    mapping: dict[str, int]
    header: list[str]


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield each record with the physical line it starts on (a quoted cell may span lines).

    ``csv`` errors (a quote left open until a field outgrows the reader's limit) become a
    ``file`` error naming where that record began, instead of escaping as an internal error.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValidationFailed.single("file", f"line {line + 1}: {exc} (is a quote left open?)") from None
        yield line + 1, record
        line = reader.line_num


HEADER_SEARCH_LINES = 5


def _find_header(records: Iterator[tuple[int, list[str]]]) -> tuple[list[str], dict[str, int]]:
    """The header row and its mapping. Exports such as Google Keyword Planner's put a title and a
    date range above the header, so the first few rows are tried before giving up."""
    first_error: ValidationFailed | None = None
    for _, record in itertools.islice(records, HEADER_SEARCH_LINES):
        try:
            return record, map_headers(record)
        except ValidationFailed as exc:
            first_error = first_error or exc
    raise first_error or ValidationFailed.single("file", "the file is empty")


def parse_rows(text: str, delimiter: str) -> ParsedRows:
    records = _records(text, delimiter)
    header, mapping = _find_header(records)
    rows: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    total = duplicates = rejected = 0
    parsers = {name: _memoised(parse) for name, parse in _PARSERS.items()}
    for line, record in records:
        # A non-blank first cell settles it for almost every row without looking at the others.
        if not (record and record[0].strip()) and not any(cell.strip() for cell in record):
            continue
        total += 1
        row, row_errors = _parse_record(record, mapping, line, parsers)
        if row_errors:
            rejected += 1
            errors.extend(row_errors)
        elif row["keyword"] in seen:
            duplicates += 1
        else:
            seen.add(row["keyword"])
            rows.append(row)
    return ParsedRows(rows, total, duplicates, rejected, errors, mapping, header)


def _parse_record(
    record: list[str], mapping: dict[str, int], line: int, parsers: dict[str, Any] = _PARSERS
) -> tuple[dict[str, Any], list[RowError]]:
    cells = {name: record[i] if i < len(record) else "" for name, i in mapping.items()}
    keyword = normalise_keyword(cells.pop("keyword"))
    errors: list[RowError] = []
    if not keyword:
        errors.append(RowError(line=line, field="keyword", message="is empty"))
    elif len(keyword) > KEYWORD_MAX_LENGTH:
        errors.append(RowError(line=line, field="keyword", message=f"longer than {KEYWORD_MAX_LENGTH}"))
    row: dict[str, Any] = {"keyword": keyword, "status": _PENDING}
    for name, value in cells.items():
        try:
            row[name] = parsers[name](value)
        except ValueError as exc:
            message = str(exc) if "must be" in str(exc) else f"{value.strip()!r} is not a valid {name}"
            errors.append(RowError(line=line, field=name, message=message))
    return row, errors


@action(
    "keywords.import_csv",
    module=MODULE,
    summary="Import keywords from a CSV file into a site sector (duplicates skipped, bad rows reported)",
    route=Route("POST", "planner/keywords/import_csv/"),
)
async def import_csv(ctx: ActionContext, params: ImportInput) -> ImportResult:
    sector = await get_or_404(ctx.session, Sector, params.sector_id)
    if sector.site_id != params.site_id:
        raise ValidationFailed.single(
            "sector_id", f"sector {sector.id} does not belong to site {params.site_id}"
        )
    text, encoding = decode(params.file)
    delimiter = sniff_delimiter(text)
    parsed = parse_rows(text, delimiter)
    await ctx.progress("parsed", 0, len(parsed.rows), f"{parsed.total} rows read")
    imported = 0
    placement = {"site_id": params.site_id, "sector_id": params.sector_id}
    for start in range(0, len(parsed.rows), INSERT_CHUNK):
        chunk = parsed.rows[start : start + INSERT_CHUNK]
        imported += await insert_skipping_duplicates(
            ctx.session, Keyword, chunk, ("site_id", "sector_id", "keyword"), common=placement
        )
        await ctx.progress("importing", start + len(chunk), len(parsed.rows))
    # Checked after inserting, when duplicates are known; failing rolls the whole import back.
    await billing.ensure_within_plan(ctx.session, "keywords", 0)
    return ImportResult(
        total_rows=parsed.total,
        imported=imported,
        duplicates_skipped=parsed.in_file_duplicates + len(parsed.rows) - imported,
        rows_rejected=parsed.rejected,
        errors_count=len(parsed.errors),
        errors=parsed.errors[:MAX_REPORTED_ERRORS],
        encoding=encoding,
        delimiter=delimiter,
        columns={name: parsed.header[i] for name, i in parsed.mapping.items()},
    )


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is prefixed with ``'``."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_lines(keywords: list[Keyword]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for kw in keywords:
        writer.writerow(
            [
                spreadsheet_safe(kw.keyword),
                kw.volume,
                kw.difficulty,
                kw.intent or "",
                kw.status,
                spreadsheet_safe("|".join(sorted(c.name for c in kw.clusters))),
                kw.site_id,
                kw.sector_id,
                kw.created_at.isoformat(),
            ]
        )
    return out.getvalue()


@action(
    "keywords.export_csv",
    module=MODULE,
    summary="Export keywords matching the filters as CSV (streamed)",
    roles=ALL_ROLES,
    route=Route("GET", "planner/keywords/export_csv/"),
    streams="text/csv",
)
async def export_csv(ctx: ActionContext, params: ExportInput) -> ExportResult:
    stmt = order_by(filtered_keywords(params), params.ordering, ORDERING, "created_at", Keyword.id)
    stmt = stmt.options(selectinload(Keyword.clusters)).execution_options(yield_per=EXPORT_CHUNK)
    collected: list[str] = []
    emit = ctx.chunk_sink or (lambda chunk: _append(collected, chunk))
    await emit(",".join(EXPORT_COLUMNS) + "\n")
    rows = 0
    result = await ctx.session.stream_scalars(stmt)
    async for batch in result.partitions():
        rows += len(batch)
        await emit(_csv_lines(list(batch)))
    return ExportResult(rows=rows, csv=None if ctx.chunk_sink else "".join(collected))


async def _append(chunks: list[str], chunk: str) -> None:
    chunks.append(chunk)
