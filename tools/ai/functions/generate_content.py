"""generate_content: an article for each writer task (offline: a labelled HTML template draft)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import Cluster, Content, ContentIdea, Keyword, Task, cluster_keywords
from tools import billing
from tools.ai.engine import AIFunction, AIInput, AIRunResult, RunContext, Saved, run_ai_function
from tools.ai.offline import template_article
from tools.common import all_visible, site_sector_names
from tools.registry import ActionContext, Route, action
from tools.writer.html import normalize_content, sanitize_html, word_count

DEFAULT_WORDS = 1200


class ArticleDraft(BaseModel):
    title: str = Field(min_length=3, max_length=255)
    meta_title: str = Field(max_length=120)
    meta_description: str = Field(max_length=400)
    primary_keyword: str = Field(max_length=255)
    secondary_keywords: list[str] = Field(default_factory=list)
    html_content: str = Field(min_length=50)


@dataclass(frozen=True)
class TaskSnapshot:
    id: int
    site_id: int
    sector_id: int
    site: str
    title: str
    description: str
    keywords: tuple[str, ...]
    content_type: str
    content_structure: str
    word_target: int


class GenerateContentInput(AIInput):
    task_ids: list[int] = Field(min_length=1, max_length=100)


class GenerateContent(AIFunction[TaskSnapshot, ArticleDraft]):
    name = "generate_content"
    operation = "content_generation"
    output_schema = ArticleDraft
    max_tokens = 8000

    async def prepare(
        self, session: AsyncSession, params: GenerateContentInput, run: RunContext
    ) -> list[TaskSnapshot]:
        tasks = await all_visible(session, Task, params.task_ids, "task_ids")
        written = set(
            (await session.scalars(select(Content.task_id).where(Content.task_id.in_(tasks)))).all()
        )
        todo = [tasks[i] for i in dict.fromkeys(params.task_ids) if i not in written]
        if not todo:
            raise ValidationFailed.single("task_ids", "every one of these tasks already has content")
        names = await site_sector_names(session, {t.sector_id for t in todo})
        snapshots = [await _snapshot(session, t, names[t.sector_id][0]) for t in todo]
        await billing.ensure_within_plan(session, "words", sum(s.word_target for s in snapshots))
        return snapshots

    def units(self, item: TaskSnapshot) -> int:
        return item.word_target

    def label(self, item: TaskSnapshot) -> str:
        return f"task {item.id} {item.title!r}"

    def prompt_variables(self, item: TaskSnapshot) -> dict[str, object]:
        primary = item.keywords[0] if item.keywords else item.title
        return {
            "title": item.title,
            "description": item.description or item.title,
            "primary_keyword": primary,
            "secondary_keywords": ", ".join(item.keywords[1:10]) or "none",
            "word_count": item.word_target,
            "content_type": item.content_type,
            "content_structure": item.content_structure,
            "site": item.site,
        }

    async def offline(self, item: TaskSnapshot, run: RunContext) -> ArticleDraft:
        primary = item.keywords[0] if item.keywords else item.title.lower()
        return ArticleDraft.model_validate(
            template_article(item.title, primary, item.keywords[1:], item.word_target, item.description)
        )

    async def save(
        self, session: AsyncSession, item: TaskSnapshot, output: ArticleDraft, run: RunContext
    ) -> Saved:
        body = sanitize_html(normalize_content(output.html_content))
        words = word_count(body)
        content = Content(
            site_id=item.site_id,
            sector_id=item.sector_id,
            task_id=item.id,
            title=output.title,
            html_content=body,
            word_count=words,
            status="draft",
            meta_title=output.meta_title[:255],
            meta_description=output.meta_description,
            primary_keyword=output.primary_keyword,
            secondary_keywords=output.secondary_keywords,
        )
        session.add(content)
        task = await session.get(Task, item.id)
        if task is not None:
            task.status, task.word_count = "completed", words
        await session.flush()
        return Saved(
            ref={"content_id": content.id, "task_id": item.id, "word_count": words},
            units=words,
            usage_details={"words": words},
        )


async def _snapshot(session: AsyncSession, task: Task, site: str) -> TaskSnapshot:
    keywords = [k.strip() for k in task.keywords.split(",") if k.strip()]
    word_target = DEFAULT_WORDS
    if task.idea_id is not None and (idea := await session.get(ContentIdea, task.idea_id)) is not None:
        keywords = keywords or [k.strip() for k in idea.target_keywords.split(",") if k.strip()]
        word_target = idea.estimated_word_count
    if task.cluster_id is not None:
        cluster_words = (
            await session.scalars(
                select(Keyword.keyword)
                .join(cluster_keywords, cluster_keywords.c.keyword_id == Keyword.id)
                .where(cluster_keywords.c.cluster_id == task.cluster_id)
                .order_by(Keyword.volume.desc().nulls_last())
                .limit(15)
            )
        ).all()
        keywords += [k for k in cluster_words if k not in keywords]
        if not keywords and (cluster := await session.get(Cluster, task.cluster_id)) is not None:
            keywords = [cluster.name.lower()]
    return TaskSnapshot(
        task.id,
        task.site_id,
        task.sector_id,
        site,
        task.title,
        task.description,
        tuple(keywords),
        task.content_type,
        task.content_structure,
        word_target,
    )


@action(
    "tasks.auto_generate_content",
    module="writer",
    long=True,
    summary="Write articles for tasks (AI; offline: labelled HTML template drafts)",
    cost=lambda p: billing.credits_for("content_generation", DEFAULT_WORDS) * len(p.task_ids),
    route=Route("POST", "writer/tasks/auto_generate_content/"),
)
async def auto_generate_content(ctx: ActionContext, params: GenerateContentInput) -> AIRunResult:
    return await run_ai_function(GenerateContent(), ctx, params)
