"""generate_ideas: content ideas for clusters (offline: labelled template ideas)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Cluster, ContentIdea, ContentStructure, ContentType, Keyword, cluster_keywords
from tools import billing
from tools.ai.engine import AIFunction, AIInput, AIRunResult, RunContext, Saved, run_ai_function
from tools.ai.offline import template_ideas
from tools.common import all_visible, site_sector_names
from tools.registry import ActionContext, Route, action


class IdeaDraft(BaseModel):
    title: str = Field(min_length=3, max_length=255)
    description: str = ""
    content_type: ContentType = ContentType.BLOG_POST
    content_structure: ContentStructure = ContentStructure.ARTICLE
    target_keywords: list[str] = Field(default_factory=list)
    estimated_word_count: int = Field(1200, ge=100, le=20_000)


class IdeaPlan(BaseModel):
    ideas: list[IdeaDraft] = Field(min_length=1)


@dataclass(frozen=True)
class ClusterSnapshot:
    id: int
    site_id: int
    sector_id: int
    site: str
    sector: str
    name: str
    description: str
    keywords: tuple[tuple[str, int | None], ...]
    count: int


class GenerateIdeasInput(AIInput):
    cluster_ids: list[int] = Field(min_length=1, max_length=50)
    ideas_per_cluster: int = Field(3, ge=1, le=10)


class GenerateIdeas(AIFunction[ClusterSnapshot, IdeaPlan]):
    name = "generate_ideas"
    operation = "idea_generation"
    output_schema = IdeaPlan
    plan_resource = "ideas"

    async def prepare(
        self, session: AsyncSession, params: GenerateIdeasInput, run: RunContext
    ) -> list[ClusterSnapshot]:
        clusters = await all_visible(session, Cluster, params.cluster_ids, "cluster_ids")
        await billing.ensure_within_plan(session, "ideas", len(clusters) * params.ideas_per_cluster)
        rows = (
            await session.execute(
                select(cluster_keywords.c.cluster_id, Keyword.keyword, Keyword.volume)
                .join(Keyword, Keyword.id == cluster_keywords.c.keyword_id)
                .where(cluster_keywords.c.cluster_id.in_(clusters))
                .order_by(Keyword.volume.desc().nulls_last(), Keyword.keyword)
            )
        ).all()
        keywords: dict[int, list[tuple[str, int | None]]] = {}
        for cluster_id, keyword, volume in rows:
            keywords.setdefault(cluster_id, []).append((keyword, volume))
        names = await site_sector_names(session, {c.sector_id for c in clusters.values()})
        return [
            ClusterSnapshot(
                c.id,
                c.site_id,
                c.sector_id,
                *names[c.sector_id],
                c.name,
                c.description or "",
                tuple(keywords.get(c.id, [])[:40]),
                params.ideas_per_cluster,
            )
            for c in (clusters[i] for i in dict.fromkeys(params.cluster_ids))
        ]

    def units(self, item: ClusterSnapshot) -> int:
        return 1

    def label(self, item: ClusterSnapshot) -> str:
        return f"cluster {item.name!r}"

    def prompt_variables(self, item: ClusterSnapshot) -> dict[str, object]:
        return {
            "count": item.count,
            "cluster_name": item.name,
            "cluster_description": item.description,
            "keywords": ", ".join(f"{k} ({v})" if v is not None else k for k, v in item.keywords),
            "site": item.site,
            "sector": item.sector,
        }

    async def offline(self, item: ClusterSnapshot, run: RunContext) -> IdeaPlan:
        drafts = template_ideas(item.name, [k for k, _ in item.keywords], item.count)
        return IdeaPlan.model_validate({"ideas": drafts})

    async def save(
        self, session: AsyncSession, item: ClusterSnapshot, output: IdeaPlan, run: RunContext
    ) -> Saved:
        ideas = [
            ContentIdea(
                site_id=item.site_id,
                sector_id=item.sector_id,
                keyword_cluster_id=item.id,
                idea_title=d.title,
                description=d.description,
                content_type=d.content_type,
                content_structure=d.content_structure,
                target_keywords=", ".join(d.target_keywords),
                estimated_word_count=d.estimated_word_count,
            )
            for d in output.ideas[: item.count]
        ]
        session.add_all(ideas)
        await session.flush()
        return Saved(ref={"cluster_id": item.id, "idea_ids": [i.id for i in ideas]}, units=1)


@action(
    "clusters.auto_generate_ideas",
    module="planner",
    long=True,
    summary="Generate content ideas for clusters (AI; offline: labelled template ideas)",
    cost=lambda p: billing.credits_for("idea_generation", len(p.cluster_ids)),
    route=Route("POST", "planner/clusters/auto_generate_ideas/"),
)
async def auto_generate_ideas(ctx: ActionContext, params: GenerateIdeasInput) -> AIRunResult:
    return await run_ai_function(GenerateIdeas(), ctx, params)
