"""Cluster actions; ``keywords_count`` and ``volume`` are computed, never stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import NotFound, ValidationFailed
from storage.models import Cluster, ClusterStatus, Keyword, cluster_keywords
from tools import billing
from tools.common import (
    BulkResult,
    IdInput,
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
from tools.planner.keywords import MODULE
from tools.registry import ALL_ROLES, ActionContext, ActionInput, Route, action

KEYWORDS_COUNT = (
    select(func.count(Keyword.id))
    .join(cluster_keywords, cluster_keywords.c.keyword_id == Keyword.id)
    .where(cluster_keywords.c.cluster_id == Cluster.id)
    .correlate(Cluster)
    .scalar_subquery()
    .label("keywords_count")
)
VOLUME = (
    select(func.coalesce(func.sum(Keyword.volume), 0))
    .join(cluster_keywords, cluster_keywords.c.keyword_id == Keyword.id)
    .where(cluster_keywords.c.cluster_id == Cluster.id)
    .correlate(Cluster)
    .scalar_subquery()
    .label("volume")
)


class ClusterOut(ObjectOut):
    id: int
    name: str
    description: str | None
    status: ClusterStatus
    site_id: int
    sector_id: int
    keywords_count: int
    volume: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> ClusterOut:
        cluster, count, volume = row
        data = {k: getattr(cluster, k) for k in cls.model_fields if k not in ("keywords_count", "volume")}
        return cls.model_validate({**data, "keywords_count": count, "volume": volume})


class ClusterCreate(ActionInput):
    site_id: ObjectId
    sector_id: ObjectId
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    status: ClusterStatus = ClusterStatus.ACTIVE
    keyword_ids: list[ObjectId] = Field(default_factory=list, description="Keywords of the same sector")


class ClusterUpdate(ActionInput):
    id: ObjectId
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    status: ClusterStatus | None = None
    keyword_ids: list[ObjectId] | None = Field(None, description="Replaces the cluster's keywords")


class ClusterListInput(PageInput):
    site_id: ObjectId | None = None
    sector_id: ObjectId | None = None
    status: ClusterStatus | None = None


ORDERING = {
    "name": Cluster.name,
    "created_at": Cluster.created_at,
    "keywords_count": KEYWORDS_COUNT,
    "volume": VOLUME,
}


def clusters_with_metrics() -> Select[Any]:
    return select(Cluster, KEYWORDS_COUNT, VOLUME)


async def _cluster_out(session: AsyncSession, cluster_id: int) -> ClusterOut:
    row = (await session.execute(clusters_with_metrics().where(Cluster.id == cluster_id))).one_or_none()
    if row is None:
        raise NotFound("Cluster", cluster_id)
    return ClusterOut.of(row)


async def keywords_in_sector(session: AsyncSession, ids: list[int], sector_id: int) -> list[Keyword]:
    if not ids:
        return []
    found = {k.id: k for k in (await session.scalars(select(Keyword).where(Keyword.id.in_(ids)))).all()}
    for kid in ids:
        if kid not in found:
            raise ValidationFailed.single("keyword_ids", f"keyword {kid} not found")
        if found[kid].sector_id != sector_id:
            raise ValidationFailed.single(
                "keyword_ids", f"keyword {kid} is in sector {found[kid].sector_id}, not sector {sector_id}"
            )
    return [found[kid] for kid in dict.fromkeys(ids)]


async def _flush_unique_name(session: AsyncSession, cluster: Cluster) -> None:
    with session.no_autoflush:  # the row itself is pending; flushing it first would find it
        clash = await session.scalar(
            select(Cluster.id).where(
                Cluster.sector_id == cluster.sector_id,
                Cluster.name == cluster.name,
                Cluster.id != (cluster.id or 0),
            )
        )
    if clash is not None:
        raise ValidationFailed.single(
            "name", f"a cluster named {cluster.name!r} already exists in this sector"
        )
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise ValidationFailed.single("name", f"a cluster named {cluster.name!r} already exists") from None


async def _set_keywords(session: AsyncSession, cluster: Cluster, keyword_ids: list[int]) -> None:
    keywords = await keywords_in_sector(session, keyword_ids, cluster.sector_id)
    await session.refresh(cluster, ["keywords"])
    cluster.keywords = keywords


@action(
    "clusters.list",
    module=MODULE,
    summary="List clusters with keyword counts and total volume",
    roles=ALL_ROLES,
    route=Route("GET", "planner/clusters/"),
)
async def list_clusters(ctx: ActionContext, params: ClusterListInput) -> Page[ClusterOut]:
    stmt = clusters_with_metrics()
    for column, value in (
        (Cluster.site_id, params.site_id),
        (Cluster.sector_id, params.sector_id),
        (Cluster.status, params.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if params.search:
        stmt = stmt.where(Cluster.name.icontains(params.search, autoescape=True))
    stmt = order_by(stmt, params.ordering, ORDERING, "-created_at", Cluster.id)
    return await paginate(ctx.session, stmt, params, ClusterOut.of)


@action(
    "clusters.get",
    module=MODULE,
    summary="Show one cluster",
    roles=ALL_ROLES,
    route=Route("GET", "planner/clusters/{id}/"),
)
async def get_cluster(ctx: ActionContext, params: IdInput) -> ClusterOut:
    return await _cluster_out(ctx.session, params.id)


@action(
    "clusters.create",
    module=MODULE,
    summary="Create a cluster, optionally with keywords",
    route=Route("POST", "planner/clusters/"),
)
async def create_cluster(ctx: ActionContext, params: ClusterCreate) -> ClusterOut:
    await billing.ensure_within_plan(ctx.session, "clusters", 1)
    keywords = await keywords_in_sector(ctx.session, params.keyword_ids, params.sector_id)
    cluster = Cluster(**params.model_dump(exclude={"keyword_ids"}), keywords=keywords)
    ctx.session.add(cluster)
    await _flush_unique_name(ctx.session, cluster)
    return await _cluster_out(ctx.session, cluster.id)


@action(
    "clusters.update",
    module=MODULE,
    summary="Rename or describe a cluster, or replace its keywords",
    route=Route("PUT", "planner/clusters/{id}/"),
)
async def update_cluster(ctx: ActionContext, params: ClusterUpdate) -> ClusterOut:
    cluster = await get_or_404(ctx.session, Cluster, params.id)
    # Keywords first: their queries autoflush, and flushing a rename onto a taken name would
    # surface as a raw unique-key error instead of a ``name`` error.
    if params.keyword_ids is not None:
        await _set_keywords(ctx.session, cluster, params.keyword_ids)
    changes = params.model_dump(exclude={"id", "keyword_ids"}, exclude_unset=True)
    apply_changes(cluster, changes, nullable={"description"})
    await _flush_unique_name(ctx.session, cluster)
    return await _cluster_out(ctx.session, cluster.id)


@action(
    "clusters.delete",
    module=MODULE,
    summary="Delete a cluster (its keywords stay)",
    route=Route("DELETE", "planner/clusters/{id}/"),
)
async def delete_cluster(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Cluster, params.id)
