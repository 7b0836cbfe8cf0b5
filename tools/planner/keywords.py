"""Keyword actions: CRUD with the seed's filters, bulk status/delete, CSV import and export."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import Cluster, Intent, Keyword, KeywordStatus
from tools import billing
from tools.common import (
    MAX_INT,
    BulkResult,
    IdInput,
    IdsInput,
    ObjectId,
    ObjectOut,
    Page,
    PageInput,
    apply_changes,
    delete_one,
    get_or_404,
    order_by,
    paginate,
)
from tools.registry import ALL_ROLES, ActionContext, ActionInput, Route, action

MODULE = "planner"
KEYWORD_MAX_LENGTH = 255
# Control characters other than whitespace: pasted from spreadsheets, invisible, and PostgreSQL
# refuses NUL in text outright, which would fail a whole import.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def normalise_keyword(raw: str) -> str:
    """Keywords compare case- and whitespace-insensitively, so they are stored that way."""
    return " ".join(_CONTROL.sub("", raw).split()).lower()


def checked_keyword(raw: str) -> str:
    """Normalise, refusing text that normalises to nothing (only spaces or control characters)."""
    keyword = normalise_keyword(raw)
    if not keyword:
        raise ValueError("must contain at least one visible character")
    return keyword


class KeywordOut(ObjectOut):
    id: int
    keyword: str
    volume: int | None
    difficulty: int | None
    intent: Intent | None
    status: KeywordStatus
    site_id: int
    sector_id: int
    cluster_ids: list[int]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, kw: Keyword) -> KeywordOut:
        return cls.model_validate(
            {
                **{k: getattr(kw, k) for k in cls.model_fields if k != "cluster_ids"},
                "cluster_ids": sorted(c.id for c in kw.clusters),
            }
        )


class KeywordFields(ActionInput):
    volume: int | None = Field(None, ge=0, le=MAX_INT, description="Monthly search volume")
    difficulty: int | None = Field(None, ge=0, le=100, description="Keyword difficulty 0-100")
    intent: Intent | None = None
    status: KeywordStatus = KeywordStatus.PENDING
    cluster_ids: list[ObjectId] = Field(default_factory=list, description="Clusters in the same sector")


class KeywordCreate(KeywordFields):
    site_id: ObjectId
    sector_id: ObjectId
    keyword: str = Field(min_length=1, max_length=KEYWORD_MAX_LENGTH)

    @field_validator("keyword")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return checked_keyword(value)


class KeywordUpdate(ActionInput):
    id: ObjectId
    keyword: str | None = Field(None, min_length=1, max_length=KEYWORD_MAX_LENGTH)
    volume: int | None = Field(None, ge=0, le=MAX_INT)
    difficulty: int | None = Field(None, ge=0, le=100)
    intent: Intent | None = None
    status: KeywordStatus | None = None
    cluster_ids: list[ObjectId] | None = Field(None, description="Replaces the keyword's clusters")

    @field_validator("keyword")
    @classmethod
    def _normalise(cls, value: str | None) -> str | None:
        return None if value is None else checked_keyword(value)


class KeywordFilters(ActionInput):
    site_id: ObjectId | None = None
    sector_id: ObjectId | None = None
    status: KeywordStatus | None = None
    cluster_id: ObjectId | None = Field(None, description="Only keywords in this cluster")
    intent: Intent | None = None
    difficulty_min: int | None = Field(None, ge=0, le=100)
    difficulty_max: int | None = Field(None, ge=0, le=100)
    volume_min: int | None = Field(None, ge=0, le=MAX_INT)
    volume_max: int | None = Field(None, ge=0, le=MAX_INT)
    search: str | None = Field(None, description="Substring of the keyword")

    @field_validator("difficulty_max", "volume_max")
    @classmethod
    def _not_below_min(cls, value: int | None, info: ValidationInfo) -> int | None:
        """An inverted range is a typo, not a request for nothing; say so instead of listing nothing."""
        low_name = f"{info.field_name.removesuffix('_max')}_min" if info.field_name else ""
        low = info.data.get(low_name)
        if value is not None and low is not None and value < low:
            raise ValueError(f"must not be below {low_name} ({low})")
        return value


class KeywordListInput(KeywordFilters, PageInput):
    pass


class BulkStatusInput(IdsInput):
    status: KeywordStatus


ORDERING = {
    "created_at": Keyword.created_at,
    "volume": Keyword.volume,
    "difficulty": Keyword.difficulty,
    "keyword": Keyword.keyword,
}


def filtered_keywords(f: KeywordFilters, stmt: Select[Any] | None = None) -> Select[Any]:
    """``stmt`` (all of each keyword by default) narrowed by the filters."""
    stmt = select(Keyword) if stmt is None else stmt
    for column, value in (
        (Keyword.site_id, f.site_id),
        (Keyword.sector_id, f.sector_id),
        (Keyword.status, f.status),
        (Keyword.intent, f.intent),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    for column, low, high in (
        (Keyword.difficulty, f.difficulty_min, f.difficulty_max),
        (Keyword.volume, f.volume_min, f.volume_max),
    ):
        if low is not None:
            stmt = stmt.where(column >= low)
        if high is not None:
            stmt = stmt.where(column <= high)
    if f.cluster_id is not None:
        stmt = stmt.where(Keyword.clusters.any(Cluster.id == f.cluster_id))
    if f.search:
        stmt = stmt.where(Keyword.keyword.contains(normalise_keyword(f.search), autoescape=True))
    return stmt


async def clusters_in_sector(
    session: AsyncSession, ids: list[int], sector_id: int, field: str
) -> list[Cluster]:
    """The seed's rule: a keyword (or idea) may only join clusters of its own sector."""
    if not ids:
        return []
    found = {c.id: c for c in (await session.scalars(select(Cluster).where(Cluster.id.in_(ids)))).all()}
    for cid in ids:
        if cid not in found:
            raise ValidationFailed.single(field, f"cluster {cid} not found")
        if found[cid].sector_id != sector_id:
            raise ValidationFailed.single(
                field, f"cluster {cid} is in sector {found[cid].sector_id}, not sector {sector_id}"
            )
    return [found[cid] for cid in dict.fromkeys(ids)]


async def _ensure_unique(session: AsyncSession, kw: Keyword) -> None:
    with session.no_autoflush:  # the row itself is pending; flushing it first would find it
        clash = await session.scalar(
            select(Keyword.id).where(
                Keyword.site_id == kw.site_id,
                Keyword.sector_id == kw.sector_id,
                Keyword.keyword == kw.keyword,
                Keyword.id != (kw.id or 0),
            )
        )
    if clash is not None:
        raise ValidationFailed.single("keyword", f"{kw.keyword!r} already exists in this sector (id {clash})")


async def _flush_unique(session: AsyncSession, kw: Keyword) -> None:
    """Flush, turning a race on the unique key into the same field error as the pre-check."""
    await _ensure_unique(session, kw)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise ValidationFailed.single("keyword", f"{kw.keyword!r} already exists in this sector") from None


@action(
    "keywords.list",
    module=MODULE,
    summary="List keywords with search, filters (status, cluster, intent, difficulty, volume) and ordering",
    roles=ALL_ROLES,
    route=Route("GET", "planner/keywords/"),
)
async def list_keywords(ctx: ActionContext, params: KeywordListInput) -> Page[KeywordOut]:
    """Reads plain columns: building ORM objects (and their clusters) for a page costs more than
    the query itself on the busiest read of the API."""
    names = [name for name in KeywordOut.model_fields if name != "cluster_ids"]
    listed = select(*(getattr(Keyword, name) for name in names))
    stmt = order_by(filtered_keywords(params, listed), params.ordering, ORDERING, "-created_at", Keyword.id)
    page = await paginate(ctx.session, stmt, params, lambda row: dict(zip(names, row, strict=True)))
    clusters = await cluster_ids_of(ctx.session, [row["id"] for row in page.results])
    return page.map(lambda row: KeywordOut.model_validate({**row, "cluster_ids": clusters[row["id"]]}))


async def cluster_ids_of(session: AsyncSession, keyword_ids: list[int]) -> defaultdict[int, list[int]]:
    """keyword id -> its cluster ids, ascending (empty for a keyword in no cluster)."""
    found: defaultdict[int, list[int]] = defaultdict(list)
    if keyword_ids:
        rows = await session.execute(
            select(Keyword.id, Cluster.id)
            .join(Keyword.clusters)
            .where(Keyword.id.in_(keyword_ids))
            .order_by(Cluster.id)
        )
        for keyword_id, cluster_id in rows:
            found[keyword_id].append(cluster_id)
    return found


@action(
    "keywords.get",
    module=MODULE,
    summary="Show one keyword",
    roles=ALL_ROLES,
    route=Route("GET", "planner/keywords/{id}/"),
)
async def get_keyword(ctx: ActionContext, params: IdInput) -> KeywordOut:
    return KeywordOut.of(await get_or_404(ctx.session, Keyword, params.id))


@action(
    "keywords.create",
    module=MODULE,
    summary="Add a keyword to a site sector",
    route=Route("POST", "planner/keywords/"),
)
async def create_keyword(ctx: ActionContext, params: KeywordCreate) -> KeywordOut:
    await billing.ensure_within_plan(ctx.session, "keywords", 1)
    clusters = await clusters_in_sector(ctx.session, params.cluster_ids, params.sector_id, "cluster_ids")
    kw = Keyword(**params.model_dump(exclude={"cluster_ids"}), clusters=clusters)
    ctx.session.add(kw)
    await _flush_unique(ctx.session, kw)
    return KeywordOut.of(kw)


@action(
    "keywords.update",
    module=MODULE,
    summary="Change a keyword's text, metrics, intent, status or clusters",
    route=Route("PUT", "planner/keywords/{id}/"),
)
async def update_keyword(ctx: ActionContext, params: KeywordUpdate) -> KeywordOut:
    kw = await get_or_404(ctx.session, Keyword, params.id)
    # Look clusters up before changing anything: the query autoflushes, and flushing a renamed
    # keyword would hit the unique key as a raw database error instead of a ``keyword`` error.
    if params.cluster_ids is not None:
        kw.clusters = await clusters_in_sector(ctx.session, params.cluster_ids, kw.sector_id, "cluster_ids")
    changes = params.model_dump(exclude={"id", "cluster_ids"}, exclude_unset=True)
    apply_changes(kw, changes, nullable={"volume", "difficulty", "intent"})
    await _flush_unique(ctx.session, kw)
    return KeywordOut.of(kw)


@action(
    "keywords.delete",
    module=MODULE,
    summary="Delete one keyword",
    route=Route("DELETE", "planner/keywords/{id}/"),
)
async def delete_keyword(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Keyword, params.id)


async def visible_ids(session: AsyncSession, model: type[Keyword], ids: list[int]) -> set[int]:
    return set((await session.scalars(select(model.id).where(model.id.in_(ids)))).all())


@action(
    "keywords.bulk_delete",
    module=MODULE,
    summary="Delete many keywords at once",
    confirm=True,
    route=Route("POST", "planner/keywords/bulk_delete/"),
)
async def bulk_delete_keywords(ctx: ActionContext, params: IdsInput) -> BulkResult:
    found = await visible_ids(ctx.session, Keyword, params.ids)
    result = await ctx.session.execute(delete(Keyword).where(Keyword.id.in_(found)))
    return BulkResult(
        requested=len(set(params.ids)),
        affected=result.rowcount,
        not_found=sorted(set(params.ids) - found),
    )


@action(
    "keywords.bulk_update_status",
    module=MODULE,
    summary="Set the status of many keywords at once",
    route=Route("POST", "planner/keywords/bulk_update_status/"),
)
async def bulk_update_status(ctx: ActionContext, params: BulkStatusInput) -> BulkResult:
    found = await visible_ids(ctx.session, Keyword, params.ids)
    result = await ctx.session.execute(
        update(Keyword).where(Keyword.id.in_(found)).values(status=params.status)
    )
    return BulkResult(
        requested=len(set(params.ids)),
        affected=result.rowcount,
        not_found=sorted(set(params.ids) - found),
    )
