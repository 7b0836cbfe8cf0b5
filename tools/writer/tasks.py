"""Writer task actions: CRUD with the seed's filters, bulk status/delete, queueing content ideas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import ContentIdea, ContentStructure, ContentType, IdeaStatus, Task
from tools.common import (
    MAX_INT,
    BulkResult,
    IdInput,
    IdsInput,
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
from tools.planner.keywords import clusters_in_sector
from tools.registry import ALL_ROLES, ActionContext, ActionInput, Route, action
from tools.writer.html import strip_control

MODULE = "writer"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


def visible_text(value: str | None) -> str | None:
    """For names and titles: text that is only spaces or control characters is refused."""
    if value is None:
        return None
    value = strip_control(value).strip()
    if not value:
        raise ValueError("must contain at least one visible character")
    return value


class WriterInput(ActionInput):
    """Free text loses control characters: invisible, and PostgreSQL refuses NUL in text."""

    @field_validator("*", mode="after")
    @classmethod
    def _strip_control(cls, value: Any) -> Any:
        # ``type(...) is str``: enum members are strings too, and must stay members.
        if type(value) is str:
            return strip_control(value)
        if isinstance(value, list):
            return [strip_control(v) if type(v) is str else v for v in value]
        return value


# --- placement helpers shared by the writer's actions -------------------------------------------


_KINDS = {"ContentIdea": "idea", "SiteBlueprintTaxonomy": "taxonomy"}


def kind_of(model: type[Any]) -> str:
    """How errors name a row of ``model``: ``task 5``, ``idea 7``."""
    return _KINDS.get(model.__name__, model.__name__.lower())


async def in_sector(session: AsyncSession, model: type[Any], ident: int, sector_id: int, field: str) -> Any:
    """Load a referenced row that must be visible and in ``sector_id``; errors name ``field``."""
    obj = await session.get(model, ident)
    if obj is None:
        raise ValidationFailed.single(field, f"{kind_of(model)} {ident} not found")
    if obj.sector_id != sector_id:
        raise ValidationFailed.single(
            field, f"{kind_of(model)} {ident} is in sector {obj.sector_id}, not sector {sector_id}"
        )
    return obj


async def placed_with(
    session: AsyncSession,
    site_id: int | None,
    sector_id: int | None,
    refs: Sequence[tuple[str, type[Any], int | None]],
) -> tuple[int, int]:
    """Site and sector of a new row, given directly or taken from the rows it references.

    ``refs`` are ``(field, model, id)``; each referenced row must be visible and in the same site and
    sector as the others and as any ``site_id``/``sector_id`` given. With no reference, both are required.
    """
    for field, model, ident in refs:
        if ident is None:
            continue
        obj = await session.get(model, ident)
        if obj is None:
            raise ValidationFailed.single(field, f"{kind_of(model)} {ident} not found")
        for name, want, have in (("site", site_id, obj.site_id), ("sector", sector_id, obj.sector_id)):
            if want is not None and want != have:
                raise ValidationFailed.single(
                    field, f"{kind_of(model)} {ident} is in {name} {have}, not {name} {want}"
                )
        site_id, sector_id = obj.site_id, obj.sector_id
    alternatives = " or ".join(field for field, _, _ in refs)
    for name, value in (("site_id", site_id), ("sector_id", sector_id)):
        if value is None:
            raise ValidationFailed.single(name, f"is required unless {alternatives} is given")
    assert site_id is not None and sector_id is not None
    return site_id, sector_id


async def visible_ids(session: AsyncSession, model: type[Any], ids: Sequence[int]) -> set[int]:
    return set((await session.scalars(select(model.id).where(model.id.in_(ids)))).all())


# --- inputs and outputs ------------------------------------------------------------------------


class TaskOut(ObjectOut):
    id: int
    title: str
    description: str
    keywords: str
    cluster_id: int | None
    idea_id: int | None
    content_type: ContentType
    content_structure: ContentStructure
    status: TaskStatus
    word_count: int
    site_id: int
    sector_id: int
    created_at: datetime
    updated_at: datetime


class TaskCreate(WriterInput):
    site_id: int
    sector_id: int
    title: str = Field(min_length=1, max_length=255)
    description: str = ""
    keywords: str = Field("", description="Comma-separated target keywords")
    cluster_id: int | None = Field(None, description="Cluster in the same sector")
    idea_id: int | None = Field(None, description="Content idea in the same sector")
    content_type: ContentType = ContentType.BLOG_POST
    content_structure: ContentStructure = ContentStructure.ARTICLE
    status: TaskStatus = TaskStatus.QUEUED
    word_count: int = Field(0, ge=0, le=MAX_INT)

    _title = field_validator("title")(visible_text)


class TaskUpdate(WriterInput):
    id: int
    title: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    keywords: str | None = None
    cluster_id: int | None = None
    idea_id: int | None = None
    content_type: ContentType | None = None
    content_structure: ContentStructure | None = None
    status: TaskStatus | None = None
    word_count: int | None = Field(None, ge=0, le=MAX_INT)

    _title = field_validator("title")(visible_text)


class TaskListInput(PageInput):
    site_id: int | None = None
    sector_id: int | None = None
    status: TaskStatus | None = None
    cluster_id: int | None = None
    content_type: ContentType | None = None
    content_structure: ContentStructure | None = None


class TaskBulkUpdate(IdsInput):
    status: TaskStatus


class QueuedIdeas(BaseModel):
    requested: int
    created: list[int] = Field(description="Ids of the new tasks, in the order of the ideas")
    already_queued: list[int] = Field(default_factory=list, description="Ideas that already have a task")
    not_found: list[int] = Field(default_factory=list, description="Ideas that do not exist or are hidden")


ORDERING = {
    "title": Task.title,
    "created_at": Task.created_at,
    "word_count": Task.word_count,
    "status": Task.status,
}


async def _check_links(session: AsyncSession, sector_id: int, changes: dict[str, Any]) -> None:
    if changes.get("cluster_id") is not None:
        await clusters_in_sector(session, [changes["cluster_id"]], sector_id, "cluster_id")
    if changes.get("idea_id") is not None:
        await in_sector(session, ContentIdea, changes["idea_id"], sector_id, "idea_id")


async def _task_out(session: AsyncSession, task: Task) -> TaskOut:
    await session.flush()
    await session.refresh(task)
    return TaskOut.model_validate(task)


# --- actions -----------------------------------------------------------------------------------


@action(
    "tasks.list",
    module=MODULE,
    summary="List writer tasks with search (title, keywords), filters and ordering",
    roles=ALL_ROLES,
    route=Route("GET", "writer/tasks/"),
)
async def list_tasks(ctx: ActionContext, params: TaskListInput) -> Page[TaskOut]:
    equal = ("site_id", "sector_id", "status", "cluster_id", "content_type", "content_structure")
    stmt = filtered(Task, params, equal, [Task.title, Task.keywords])
    stmt = order_by(stmt, params.ordering, ORDERING, "-created_at", Task.id)
    return await paginate(ctx.session, stmt, params, lambda row: TaskOut.model_validate(row[0]))


@action(
    "tasks.get",
    module=MODULE,
    summary="Show one writer task",
    roles=ALL_ROLES,
    route=Route("GET", "writer/tasks/{id}/"),
)
async def get_task(ctx: ActionContext, params: IdInput) -> TaskOut:
    return TaskOut.model_validate(await get_or_404(ctx.session, Task, params.id))


@action(
    "tasks.create",
    module=MODULE,
    summary="Add a writer task to a site sector",
    route=Route("POST", "writer/tasks/"),
)
async def create_task(ctx: ActionContext, params: TaskCreate) -> TaskOut:
    await _check_links(ctx.session, params.sector_id, params.model_dump())
    task = Task(**params.model_dump())
    ctx.session.add(task)
    return await _task_out(ctx.session, task)


@action(
    "tasks.update",
    module=MODULE,
    summary="Change a writer task's title, keywords, cluster, idea, type, structure or status",
    route=Route("PUT", "writer/tasks/{id}/"),
)
async def update_task(ctx: ActionContext, params: TaskUpdate) -> TaskOut:
    task = await get_or_404(ctx.session, Task, params.id)
    changes = params.model_dump(exclude={"id"}, exclude_unset=True)
    await _check_links(ctx.session, task.sector_id, changes)
    apply_changes(task, changes, nullable={"cluster_id", "idea_id"})
    return await _task_out(ctx.session, task)


@action(
    "tasks.delete",
    module=MODULE,
    summary="Delete one writer task (its images go too; its content stays, unlinked)",
    route=Route("DELETE", "writer/tasks/{id}/"),
)
async def delete_task(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Task, params.id)


@action(
    "tasks.bulk_delete",
    module=MODULE,
    summary="Delete many writer tasks at once",
    confirm=True,
    route=Route("POST", "writer/tasks/bulk_delete/"),
)
async def bulk_delete_tasks(ctx: ActionContext, params: IdsInput) -> BulkResult:
    found = await visible_ids(ctx.session, Task, params.ids)
    result = await ctx.session.execute(delete(Task).where(Task.id.in_(found)))
    return BulkResult(
        requested=len(set(params.ids)), affected=result.rowcount, not_found=sorted(set(params.ids) - found)
    )


@action(
    "tasks.bulk_update",
    module=MODULE,
    summary="Set the status of many writer tasks at once",
    route=Route("POST", "writer/tasks/bulk_update/"),
)
async def bulk_update_tasks(ctx: ActionContext, params: TaskBulkUpdate) -> BulkResult:
    found = await visible_ids(ctx.session, Task, params.ids)
    result = await ctx.session.execute(update(Task).where(Task.id.in_(found)).values(status=params.status))
    return BulkResult(
        requested=len(set(params.ids)), affected=result.rowcount, not_found=sorted(set(params.ids) - found)
    )


@action(
    "tasks.create_from_ideas",
    module=MODULE,
    summary="Queue content ideas to the writer: one task per idea, marking each idea scheduled",
    route=Route("POST", "writer/tasks/create_from_ideas/"),
)
async def create_tasks_from_ideas(ctx: ActionContext, params: IdsInput) -> QueuedIdeas:
    wanted = list(dict.fromkeys(params.ids))
    found = await ctx.session.scalars(select(ContentIdea).where(ContentIdea.id.in_(wanted)))
    ideas = {idea.id: idea for idea in found}
    queued = set((await ctx.session.scalars(select(Task.idea_id).where(Task.idea_id.in_(list(ideas))))).all())
    tasks: list[Task] = []
    for ident in wanted:
        idea = ideas.get(ident)
        if idea is None or ident in queued:
            continue
        tasks.append(
            Task(
                site_id=idea.site_id,
                sector_id=idea.sector_id,
                title=idea.idea_title,
                description=idea.description,
                keywords=idea.target_keywords,
                cluster_id=idea.keyword_cluster_id,
                idea_id=idea.id,
                content_type=idea.content_type,
                content_structure=idea.content_structure,
                status=TaskStatus.QUEUED,
            )
        )
        idea.status = IdeaStatus.SCHEDULED
    ctx.session.add_all(tasks)
    await ctx.session.flush()
    return QueuedIdeas(
        requested=len(wanted),
        created=[t.id for t in tasks],
        already_queued=[i for i in wanted if i in queued],
        not_found=[i for i in wanted if i not in ideas],
    )
