"""Image prompts from articles, then the images themselves (offline: labelled placeholder PNGs)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import Content, Image
from storage.settings import get_settings
from tools import billing
from tools.ai.engine import AIFunction, AIInput, AIRunResult, RunContext, Saved, run_ai_function
from tools.ai.offline import OFFLINE_MODEL, placeholder_png, template_image_prompts
from tools.ai.providers.base import ProviderError, Usage
from tools.common import all_visible
from tools.registry import ActionContext, Route, action
from tools.writer.html import html_text

IMAGE_SIZES = {
    "featured": (1280, 720),
    "in_article": (1024, 576),
    "desktop": (1600, 900),
    "mobile": (720, 1280),
}
_HEADING = re.compile(r"<h2[^>]*>(.*?)</h2>", re.IGNORECASE | re.DOTALL)


# --- generate_image_prompts --------------------------------------------------------------------


class ImagePromptPlan(BaseModel):
    featured_prompt: str = Field(min_length=5)
    in_article_prompts: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class ContentSnapshot:
    id: int
    site_id: int
    sector_id: int
    task_id: int | None
    title: str
    headings: tuple[str, ...]
    excerpt: str
    max_images: int


class ImagePromptsInput(AIInput):
    content_ids: list[int] = Field(min_length=1, max_length=100)
    max_in_article: int = Field(3, ge=0, le=10)
    image_style: str = Field("natural, editorial photography", max_length=200)


class GenerateImagePrompts(AIFunction[ContentSnapshot, ImagePromptPlan]):
    name = "generate_image_prompts"
    operation = "image_prompt_extraction"
    output_schema = ImagePromptPlan

    def __init__(self, image_style: str = "natural, editorial photography") -> None:
        self.image_style = image_style

    async def prepare(
        self, session: AsyncSession, params: ImagePromptsInput, run: RunContext
    ) -> list[ContentSnapshot]:
        found = await all_visible(session, Content, params.content_ids, "content_ids")
        return [
            ContentSnapshot(
                c.id,
                c.site_id,
                c.sector_id,
                c.task_id,
                c.title,
                tuple(html_text(h).strip() for h in _HEADING.findall(c.html_content)),
                " ".join(html_text(c.html_content).split()[:120]),
                params.max_in_article,
            )
            for c in (found[i] for i in dict.fromkeys(params.content_ids))
        ]

    def units(self, item: ContentSnapshot) -> int:
        return 1

    def label(self, item: ContentSnapshot) -> str:
        return f"content {item.id} {item.title!r}"

    def prompt_variables(self, item: ContentSnapshot) -> dict[str, object]:
        return {
            "title": item.title,
            "headings": "; ".join(item.headings) or "none",
            "excerpt": item.excerpt,
            "max_images": item.max_images,
            "image_style": self.image_style,
        }

    async def offline(self, item: ContentSnapshot, run: RunContext) -> ImagePromptPlan:
        return ImagePromptPlan.model_validate(
            template_image_prompts(item.title, item.headings, item.max_images)
        )

    async def save(
        self, session: AsyncSession, item: ContentSnapshot, output: ImagePromptPlan, run: RunContext
    ) -> Saved:
        prompts = [("featured", output.featured_prompt)] + [
            ("in_article", p) for p in output.in_article_prompts[: item.max_images]
        ]
        images = [
            Image(
                site_id=item.site_id,
                sector_id=item.sector_id,
                content_id=item.id,
                task_id=item.task_id,
                image_type=kind,
                prompt=prompt,
                status="pending",
                position=n,
            )
            for n, (kind, prompt) in enumerate(prompts)
        ]
        session.add_all(images)
        await session.flush()
        return Saved(ref={"content_id": item.id, "image_ids": [i.id for i in images]}, units=1)


@action(
    "content.generate_image_prompts",
    module="writer",
    long=True,
    summary="Describe the featured and in-article images an article needs (AI; offline: templates)",
    cost=lambda p: billing.credits_for("image_prompt_extraction", len(p.content_ids)),
    route=Route("POST", "writer/content/generate_image_prompts/"),
)
async def generate_image_prompts(ctx: ActionContext, params: ImagePromptsInput) -> AIRunResult:
    return await run_ai_function(GenerateImagePrompts(params.image_style), ctx, params)


# --- generate_images ---------------------------------------------------------------------------


class StoredImage(BaseModel):
    path: str
    url: str | None
    model: str


@dataclass(frozen=True)
class ImageJob:
    id: int
    account_id: int
    image_type: str
    prompt: str


class GenerateImagesInput(AIInput):
    image_ids: list[int] = Field(min_length=1, max_length=100)


class GenerateImages(AIFunction[ImageJob, StoredImage]):
    name = "generate_images"
    operation = "image_generation"
    output_schema = StoredImage

    async def prepare(
        self, session: AsyncSession, params: GenerateImagesInput, run: RunContext
    ) -> list[ImageJob]:
        found = await all_visible(session, Image, params.image_ids, "image_ids")
        if blank := [i for i in found.values() if not i.prompt.strip()]:
            raise ValidationFailed.single("image_ids", f"image {blank[0].id} has no prompt; write one first")
        await billing.ensure_within_plan(session, "images", len(found))
        return [
            ImageJob(i.id, i.account_id, i.image_type, i.prompt)
            for i in (found[n] for n in dict.fromkeys(params.image_ids))
        ]

    def units(self, item: ImageJob) -> int:
        return 1

    def label(self, item: ImageJob) -> str:
        return f"image {item.id} ({item.image_type})"

    def prompt_variables(self, item: ImageJob) -> dict[str, object]:
        return {}

    async def offline(self, item: ImageJob, run: RunContext) -> StoredImage:
        width, height = IMAGE_SIZES.get(item.image_type, IMAGE_SIZES["featured"])
        return _store(item, placeholder_png(item.prompt, width, height), None, OFFLINE_MODEL)

    async def generate(self, item: ImageJob, run: RunContext) -> tuple[StoredImage, Usage]:
        if run.images is None:
            return await self.offline(item, run), Usage(model=OFFLINE_MODEL)
        await run.action.progress("call", message=self.label(item))
        width, height = IMAGE_SIZES.get(item.image_type, IMAGE_SIZES["featured"])
        made = await run.images.generate(
            account_id=item.account_id, prompt=item.prompt, width=width, height=height
        )
        data = made.data if made.data is not None else await _download(made.url or "")
        return _store(item, data, made.url, made.usage.model), made.usage

    async def save(
        self, session: AsyncSession, item: ImageJob, output: StoredImage, run: RunContext
    ) -> Saved:
        image = await session.get(Image, item.id)
        if image is None:
            raise ValidationFailed.single("image_ids", f"image {item.id} was deleted while generating")
        image.image_path, image.image_url, image.status = output.path, output.url or output.path, "generated"
        return Saved(ref={"image_id": item.id, "path": output.path}, units=1, usage_details={"images": 1})


def _store(item: ImageJob, data: bytes, url: str | None, model: str) -> StoredImage:
    folder = get_settings().data_dir / "images" / str(item.account_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{item.id}-{uuid.uuid4().hex[:8]}.png"
    path.write_bytes(data)
    return StoredImage(path=str(Path(path)), url=url, model=model)


async def _download(url: str) -> bytes:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=60)) as resp,
        ):
            resp.raise_for_status()
            return await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(f"could not download the generated image: {exc}") from None


@action(
    "images.generate_images",
    module="writer",
    long=True,
    summary="Generate pictures for image records (AI image model; offline: placeholder PNGs)",
    cost=lambda p: billing.credits_for("image_generation", len(p.image_ids)),
    route=Route("POST", "writer/images/generate_images/"),
)
async def generate_images(ctx: ActionContext, params: GenerateImagesInput) -> AIRunResult:
    return await run_ai_function(GenerateImages(), ctx, params)
