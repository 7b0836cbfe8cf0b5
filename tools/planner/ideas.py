"""Content idea actions."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from storage.models import ContentIdea, ContentStructure, ContentType, IdeaStatus
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
    filtered,
    get_or_404,
    order_by,
    paginate,
)
from tools.planner.keywords import MODULE, clusters_in_sector
from tools.registry import ALL_ROLES, ActionContext, ActionInput, Route, action


class IdeaOut(ObjectOut):
    id: int
    idea_title: str
    description: str
    content_type: ContentType
    content_structure: ContentStructure
    target_keywords: str
    keyword_cluster_id: int | None
    estimated_word_count: int
    status: IdeaStatus
    site_id: int
    sector_id: int
    created_at: datetime
    updated_at: datetime


class IdeaFields(ActionInput):
    description: str = ""
    content_type: ContentType = ContentType.BLOG_POST
    content_structure: ContentStructure = ContentStructure.ARTICLE
    target_keywords: str = Field("", description="Comma-separated keywords the piece targets")
    keyword_cluster_id: ObjectId | None = Field(None, description="Cluster in the same sector")
    estimated_word_count: int = Field(1000, ge=100, le=20_000)
    status: IdeaStatus = IdeaStatus.NEW


class IdeaCreate(IdeaFields):
    site_id: ObjectId
    sector_id: ObjectId
    idea_title: str = Field(min_length=1, max_length=255)


class IdeaUpdate(ActionInput):
    id: ObjectId
    idea_title: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    content_type: ContentType | None = None
    content_structure: ContentStructure | None = None
    target_keywords: str | None = None
    keyword_cluster_id: ObjectId | None = None
    estimated_word_count: int | None = Field(None, ge=100, le=20_000)
    status: IdeaStatus | None = None


class IdeaListInput(PageInput):
    site_id: ObjectId | None = None
    sector_id: ObjectId | None = None
    status: IdeaStatus | None = None
    keyword_cluster_id: ObjectId | None = None
    content_type: ContentType | None = None
    content_structure: ContentStructure | None = None


ORDERING = {
    "created_at": ContentIdea.created_at,
    "idea_title": ContentIdea.idea_title,
    "estimated_word_count": ContentIdea.estimated_word_count,
    "status": ContentIdea.status,
}


@action(
    "ideas.list",
    module=MODULE,
    summary="List content ideas",
    roles=ALL_ROLES,
    route=Route("GET", "planner/ideas/"),
)
async def list_ideas(ctx: ActionContext, params: IdeaListInput) -> Page[IdeaOut]:
    equal = ("site_id", "sector_id", "status", "keyword_cluster_id", "content_type", "content_structure")
    stmt = filtered(ContentIdea, params, equal, [ContentIdea.idea_title])
    stmt = order_by(stmt, params.ordering, ORDERING, "-created_at", ContentIdea.id)
    return await paginate(ctx.session, stmt, params, lambda row: IdeaOut.model_validate(row[0]))


@action(
    "ideas.get",
    module=MODULE,
    summary="Show one content idea",
    roles=ALL_ROLES,
    route=Route("GET", "planner/ideas/{id}/"),
)
async def get_idea(ctx: ActionContext, params: IdInput) -> IdeaOut:
    return IdeaOut.model_validate(await get_or_404(ctx.session, ContentIdea, params.id))


@action("ideas.create", module=MODULE, summary="Add a content idea", route=Route("POST", "planner/ideas/"))
async def create_idea(ctx: ActionContext, params: IdeaCreate) -> IdeaOut:
    await billing.ensure_within_plan(ctx.session, "ideas", 1)
    if params.keyword_cluster_id is not None:
        await clusters_in_sector(
            ctx.session, [params.keyword_cluster_id], params.sector_id, "keyword_cluster_id"
        )
    idea = ContentIdea(**params.model_dump())
    ctx.session.add(idea)
    await ctx.session.flush()
    await ctx.session.refresh(idea)
    return IdeaOut.model_validate(idea)


@action(
    "ideas.update", module=MODULE, summary="Change a content idea", route=Route("PUT", "planner/ideas/{id}/")
)
async def update_idea(ctx: ActionContext, params: IdeaUpdate) -> IdeaOut:
    idea = await get_or_404(ctx.session, ContentIdea, params.id)
    changes = params.model_dump(exclude={"id"}, exclude_unset=True)
    if changes.get("keyword_cluster_id") is not None:
        await clusters_in_sector(
            ctx.session, [changes["keyword_cluster_id"]], idea.sector_id, "keyword_cluster_id"
        )
    apply_changes(idea, changes, nullable={"keyword_cluster_id"})
    await ctx.session.flush()
    await ctx.session.refresh(idea)
    return IdeaOut.model_validate(idea)


@action(
    "ideas.delete",
    module=MODULE,
    summary="Delete a content idea",
    route=Route("DELETE", "planner/ideas/{id}/"),
)
async def delete_idea(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, ContentIdea, params.id)
