"""auto_cluster: group a sector's keywords into topic clusters (offline: real text clustering)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import Cluster, Keyword, KeywordStatus
from tools import billing
from tools.ai.clustering import cluster_keywords
from tools.ai.engine import AIFunction, AIInput, AIRunResult, RunContext, Saved, run_ai_function
from tools.common import site_sector_names
from tools.planner.keywords import normalise_keyword
from tools.registry import ActionContext, Route, action

LLM_BATCH = 60


class PlannedCluster(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    description: str = ""
    keywords: list[str] = Field(min_length=1)


class ClusterPlan(BaseModel):
    clusters: list[PlannedCluster]


@dataclass(frozen=True)
class SectorBatch:
    site_id: int
    sector_id: int
    site: str
    sector: str
    keywords: tuple[tuple[int, str, int | None], ...]


class AutoClusterInput(AIInput):
    keyword_ids: list[int] = Field(
        default_factory=list,
        max_length=50_000,
        description="Keywords to cluster (default: the sector's unclustered ones)",
    )
    site_id: int | None = None
    sector_id: int | None = Field(None, description="With no keyword_ids: cluster this sector's keywords")


class AutoCluster(AIFunction[SectorBatch, ClusterPlan]):
    name = "auto_cluster"
    operation = "clustering"
    output_schema = ClusterPlan
    plan_resource = "clusters"

    async def prepare(
        self, session: AsyncSession, params: AutoClusterInput, run: RunContext
    ) -> list[SectorBatch]:
        stmt = select(Keyword.id, Keyword.keyword, Keyword.volume, Keyword.site_id, Keyword.sector_id)
        if params.keyword_ids:
            stmt = stmt.where(Keyword.id.in_(params.keyword_ids))
        elif params.sector_id is not None:
            stmt = stmt.where(Keyword.sector_id == params.sector_id, ~Keyword.clusters.any())
        else:
            raise ValidationFailed.single("keyword_ids", "give keyword_ids, or a sector_id to cluster")
        if params.site_id is not None:
            stmt = stmt.where(Keyword.site_id == params.site_id)
        rows = (await session.execute(stmt.order_by(Keyword.id))).all()
        if params.keyword_ids and (missing := set(params.keyword_ids) - {r.id for r in rows}):
            raise ValidationFailed.single("keyword_ids", f"keyword(s) not found: {sorted(missing)[:10]}")
        by_sector: dict[tuple[int, int], list[Any]] = {}
        for row in rows:
            by_sector.setdefault((row.site_id, row.sector_id), []).append(row)
        names = await site_sector_names(session, {k[1] for k in by_sector})
        batch = len(rows) if run.offline else LLM_BATCH
        return [
            SectorBatch(
                site_id,
                sector_id,
                *names[sector_id],
                tuple((r.id, r.keyword, r.volume) for r in group[i : i + batch]),
            )
            for (site_id, sector_id), group in by_sector.items()
            for i in range(0, len(group), batch)
        ]

    def units(self, item: SectorBatch) -> int:
        return len(item.keywords)

    def label(self, item: SectorBatch) -> str:
        return f"{len(item.keywords)} keywords in sector {item.sector!r}"

    def prompt_variables(self, item: SectorBatch) -> dict[str, object]:
        lines = "\n".join(f"{k} ({v})" if v is not None else k for _, k, v in item.keywords)
        return {"keywords": lines, "site": item.site, "sector": item.sector}

    async def offline(self, item: SectorBatch, run: RunContext) -> ClusterPlan:
        groups = cluster_keywords([k for _, k, _ in item.keywords], volumes=[v for _, _, v in item.keywords])
        return ClusterPlan(
            clusters=[
                PlannedCluster(
                    name=g.name,
                    description=g.description,
                    keywords=[item.keywords[i][1] for i in g.member_indexes],
                )
                for g in groups
            ]
        )

    async def save(
        self, session: AsyncSession, item: SectorBatch, output: ClusterPlan, run: RunContext
    ) -> Saved:
        ids_by_text = {normalise_keyword(text): kid for kid, text, _ in item.keywords}
        planned = [
            (
                c,
                [
                    ids_by_text[k]
                    for k in dict.fromkeys(map(normalise_keyword, c.keywords))
                    if k in ids_by_text
                ],
            )
            for c in output.clusters
        ]
        planned = [(c, ids) for c, ids in planned if ids]
        existing = {
            c.name.lower(): c
            for c in (
                await session.scalars(
                    select(Cluster).where(
                        Cluster.sector_id == item.sector_id,
                        func.lower(Cluster.name).in_([c.name.lower() for c, _ in planned]),
                    )
                )
            ).all()
        }
        new = [c for c, _ in planned if c.name.lower() not in existing]
        await billing.ensure_within_plan(session, "clusters", len({c.name.lower() for c in new}))
        keywords = {
            k.id: k
            for k in (
                await session.scalars(
                    select(Keyword).where(Keyword.id.in_([i for _, ids in planned for i in ids]))
                )
            ).all()
        }
        cluster_ids = []
        for plan, ids in planned:
            cluster = existing.get(plan.name.lower())
            if cluster is None:
                cluster = Cluster(
                    site_id=item.site_id,
                    sector_id=item.sector_id,
                    name=plan.name[:255],
                    description=plan.description,
                )
                session.add(cluster)
                existing[plan.name.lower()] = cluster
            for kid in ids:
                kw = keywords[kid]
                if cluster not in kw.clusters:
                    kw.clusters.append(cluster)
                kw.status = KeywordStatus.ACTIVE
        await session.flush()
        cluster_ids = sorted({existing[c.name.lower()].id for c, _ in planned})
        clustered = len({i for _, ids in planned for i in ids})
        return Saved(
            ref={
                "sector_id": item.sector_id,
                "cluster_ids": cluster_ids,
                "clusters_created": len(new),
                "keywords_clustered": clustered,
                "keywords_unassigned": len(item.keywords) - clustered,
            },
            units=clustered,
        )


@action(
    "keywords.auto_cluster",
    module="planner",
    long=True,
    summary="Group keywords into topic clusters (AI; offline: text-similarity clustering)",
    cost=lambda p: billing.credits_for("clustering", len(p.keyword_ids) or 1),
    route=Route("POST", "planner/keywords/auto_cluster/"),
)
async def auto_cluster(ctx: ActionContext, params: AutoClusterInput) -> AIRunResult:
    return await run_ai_function(AutoCluster(), ctx, params)
