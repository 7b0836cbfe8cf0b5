"""Content actions: every body is normalised to HTML, sanitised, and its words counted on write."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import Content, Task
from tools.common import (
    MAX_INT,
    BulkResult,
    IdInput,
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
from tools.registry import ALL_ROLES, ActionContext, Route, action
from tools.writer.html import normalize_content, sanitize_html, word_count
from tools.writer.tasks import MODULE, WriterInput, in_sector, placed_with

MAX_HTML_LENGTH = 2_000_000


class ContentStatus(StrEnum):
    DRAFT = "draft"
    REVIEW = "review"
    PUBLISHED = "published"


def keyword_list(values: list[str] | None) -> list[str] | None:
    """Blank entries dropped, repeats (ignoring case) kept once, each at most 255 characters."""
    if values is None:
        return None
    kept: dict[str, str] = {}
    for value in values:
        value = value.strip()
        if len(value) > 255:
            raise ValueError(f"{value[:20]!r}… is longer than 255 characters")
        if value:
            kept.setdefault(value.lower(), value)
    return list(kept.values())


class ContentOut(ObjectOut):
    id: int
    task_id: int | None
    title: str
    html_content: str
    word_count: int
    status: ContentStatus
    wp_post_id: int | None
    meta_title: str | None
    meta_description: str | None
    primary_keyword: str | None
    secondary_keywords: list[str]
    site_id: int
    sector_id: int
    created_at: datetime
    updated_at: datetime


class ContentFields(WriterInput):
    title: str | None = Field(None, max_length=255, description="Defaults to the task's title, if any")
    html_content: str = Field(
        "",
        max_length=MAX_HTML_LENGTH,
        description="HTML, a whole HTML document, or plain/markdown-ish text (converted to HTML)",
    )
    status: ContentStatus = ContentStatus.DRAFT
    wp_post_id: int | None = Field(None, ge=1, le=MAX_INT)
    meta_title: str | None = Field(None, max_length=255)
    meta_description: str | None = None
    primary_keyword: str | None = Field(None, max_length=255)
    secondary_keywords: list[str] = Field(default_factory=list, max_length=100)

    _keywords = field_validator("secondary_keywords")(keyword_list)


class ContentCreate(ContentFields):
    site_id: int | None = Field(None, description="Required unless task_id is given")
    sector_id: int | None = Field(None, description="Required unless task_id is given")
    task_id: int | None = Field(None, description="The task this content fulfils; at most one content each")


class ContentUpdate(WriterInput):
    id: int
    task_id: int | None = None
    title: str | None = Field(None, max_length=255)
    html_content: str | None = Field(None, max_length=MAX_HTML_LENGTH)
    status: ContentStatus | None = None
    wp_post_id: int | None = Field(None, ge=1, le=MAX_INT)
    meta_title: str | None = Field(None, max_length=255)
    meta_description: str | None = None
    primary_keyword: str | None = Field(None, max_length=255)
    secondary_keywords: list[str] | None = Field(None, max_length=100)

    _keywords = field_validator("secondary_keywords")(keyword_list)


class ContentListInput(PageInput):
    site_id: int | None = None
    sector_id: int | None = None
    status: ContentStatus | None = None
    task_id: int | None = None


ORDERING = {
    "created_at": Content.created_at,
    "word_count": Content.word_count,
    "title": Content.title,
    "status": Content.status,
}
NULLABLE = {"task_id", "wp_post_id", "meta_title", "meta_description", "primary_keyword"}


def clean_body(text_or_html: str) -> tuple[str, int]:
    """Normalised, sanitised HTML and its word count."""
    body = sanitize_html(normalize_content(text_or_html))
    return body, word_count(body)


async def _ensure_task_free(session: AsyncSession, task_id: int, content_id: int | None) -> None:
    """The seed's one-to-one: a task has at most one content."""
    with session.no_autoflush:
        clash = await session.scalar(
            select(Content.id).where(Content.task_id == task_id, Content.id != (content_id or 0))
        )
    if clash is not None:
        raise ValidationFailed.single("task_id", f"task {task_id} already has content (id {clash})")


async def _saved(session: AsyncSession, content: Content) -> ContentOut:
    """Flush, turning a race on the one-content-per-task key into the same error as the pre-check."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        if content.task_id is None:
            raise
        raise ValidationFailed.single("task_id", f"task {content.task_id} already has content") from None
    await session.refresh(content)
    return ContentOut.model_validate(content)


@action(
    "content.list",
    module=MODULE,
    summary="List content with search (title, primary keyword), filters and ordering",
    roles=ALL_ROLES,
    route=Route("GET", "writer/content/"),
)
async def list_content(ctx: ActionContext, params: ContentListInput) -> Page[ContentOut]:
    stmt = filtered(
        Content,
        params,
        ("site_id", "sector_id", "status", "task_id"),
        [Content.title, Content.primary_keyword],
    )
    stmt = order_by(stmt, params.ordering, ORDERING, "-created_at", Content.id)
    return await paginate(ctx.session, stmt, params, lambda row: ContentOut.model_validate(row[0]))


@action(
    "content.get",
    module=MODULE,
    summary="Show one piece of content",
    roles=ALL_ROLES,
    route=Route("GET", "writer/content/{id}/"),
)
async def get_content(ctx: ActionContext, params: IdInput) -> ContentOut:
    return ContentOut.model_validate(await get_or_404(ctx.session, Content, params.id))


@action(
    "content.create",
    module=MODULE,
    summary="Add content (HTML or text, sanitised; words counted), optionally for a writer task",
    route=Route("POST", "writer/content/"),
)
async def create_content(ctx: ActionContext, params: ContentCreate) -> ContentOut:
    site_id, sector_id = await placed_with(
        ctx.session, params.site_id, params.sector_id, [("task_id", Task, params.task_id)]
    )
    fields: dict[str, Any] = params.model_dump(exclude={"site_id", "sector_id", "html_content"})
    if params.task_id is not None:
        await _ensure_task_free(ctx.session, params.task_id, None)
        if params.title is None:
            fields["title"] = (await get_or_404(ctx.session, Task, params.task_id)).title
    fields["title"] = fields["title"] or ""
    body, words = clean_body(params.html_content)
    content = Content(**fields, site_id=site_id, sector_id=sector_id, html_content=body, word_count=words)
    ctx.session.add(content)
    return await _saved(ctx.session, content)


@action(
    "content.update",
    module=MODULE,
    summary="Change content; a new body is re-sanitised and its words recounted",
    route=Route("PUT", "writer/content/{id}/"),
)
async def update_content(ctx: ActionContext, params: ContentUpdate) -> ContentOut:
    content = await get_or_404(ctx.session, Content, params.id)
    changes = params.model_dump(exclude={"id"}, exclude_unset=True)
    if changes.get("task_id") is not None:
        await in_sector(ctx.session, Task, changes["task_id"], content.sector_id, "task_id")
        await _ensure_task_free(ctx.session, changes["task_id"], content.id)
    if "html_content" in changes and changes["html_content"] is not None:
        changes["html_content"], changes["word_count"] = clean_body(changes["html_content"])
    apply_changes(content, changes, nullable=NULLABLE)
    return await _saved(ctx.session, content)


@action(
    "content.delete",
    module=MODULE,
    summary="Delete one piece of content (its images and maps go too)",
    route=Route("DELETE", "writer/content/{id}/"),
)
async def delete_content(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Content, params.id)
