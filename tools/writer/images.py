"""Image actions: image records of a task and/or its content (the generator fills ``image_url``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from storage.models import Content, Image, Task
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
from tools.writer.tasks import MODULE, WriterInput, in_sector, placed_with


class ImageType(StrEnum):
    FEATURED = "featured"
    IN_ARTICLE = "in_article"
    DESKTOP = "desktop"
    MOBILE = "mobile"


class ImageStatus(StrEnum):
    PENDING = "pending"
    GENERATED = "generated"
    FAILED = "failed"


def web_url(value: str | None) -> str | None:
    """Image URLs end up in ``<img src>``; only web addresses and site-relative paths belong there."""
    if value is not None and (
        not value.lower().startswith(("https://", "http://", "/")) or value.startswith("//")
    ):
        raise ValueError("must be an http(s) URL or a path starting with '/'")
    return value


class ImageOut(ObjectOut):
    id: int
    task_id: int | None
    content_id: int | None
    image_type: ImageType
    prompt: str
    image_url: str | None
    image_path: str | None
    status: ImageStatus
    position: int
    site_id: int
    sector_id: int
    created_at: datetime
    updated_at: datetime


class ImageCreate(WriterInput):
    site_id: int | None = Field(None, description="Required unless task_id or content_id is given")
    sector_id: int | None = Field(None, description="Required unless task_id or content_id is given")
    task_id: int | None = Field(None, description="Writer task in the same sector")
    content_id: int | None = Field(None, description="Content in the same sector")
    image_type: ImageType = ImageType.FEATURED
    prompt: str = ""
    image_url: str | None = Field(None, max_length=1000)
    image_path: str | None = Field(None, max_length=1000)
    status: ImageStatus = ImageStatus.PENDING
    position: int = Field(0, ge=0, le=MAX_INT, description="Order among the content's images")

    _url = field_validator("image_url")(web_url)


class ImageUpdate(WriterInput):
    id: int
    task_id: int | None = None
    content_id: int | None = None
    image_type: ImageType | None = None
    prompt: str | None = None
    image_url: str | None = Field(None, max_length=1000)
    image_path: str | None = Field(None, max_length=1000)
    status: ImageStatus | None = None
    position: int | None = Field(None, ge=0, le=MAX_INT)

    _url = field_validator("image_url")(web_url)


class ImageListInput(PageInput):
    site_id: int | None = None
    sector_id: int | None = None
    task_id: int | None = None
    content_id: int | None = None
    image_type: ImageType | None = None
    status: ImageStatus | None = None


ORDERING = {
    "position": Image.position,
    "created_at": Image.created_at,
    "status": Image.status,
    "image_type": Image.image_type,
}
NULLABLE = {"task_id", "content_id", "image_url", "image_path"}


async def _image_out(ctx: ActionContext, image: Image) -> ImageOut:
    await ctx.session.flush()
    await ctx.session.refresh(image)
    return ImageOut.model_validate(image)


@action(
    "images.list",
    module=MODULE,
    summary="List image records by task, content, type or status (search matches the prompt)",
    roles=ALL_ROLES,
    route=Route("GET", "writer/images/"),
)
async def list_images(ctx: ActionContext, params: ImageListInput) -> Page[ImageOut]:
    equal = ("site_id", "sector_id", "task_id", "content_id", "image_type", "status")
    stmt = filtered(Image, params, equal, [Image.prompt])
    stmt = order_by(stmt, params.ordering, ORDERING, "position", Image.id)
    return await paginate(ctx.session, stmt, params, lambda row: ImageOut.model_validate(row[0]))


@action(
    "images.get",
    module=MODULE,
    summary="Show one image record",
    roles=ALL_ROLES,
    route=Route("GET", "writer/images/{id}/"),
)
async def get_image(ctx: ActionContext, params: IdInput) -> ImageOut:
    return ImageOut.model_validate(await get_or_404(ctx.session, Image, params.id))


@action(
    "images.create",
    module=MODULE,
    summary="Add an image record for a task and/or content (featured, in_article, desktop, mobile)",
    route=Route("POST", "writer/images/"),
)
async def create_image(ctx: ActionContext, params: ImageCreate) -> ImageOut:
    site_id, sector_id = await placed_with(
        ctx.session,
        params.site_id,
        params.sector_id,
        [("task_id", Task, params.task_id), ("content_id", Content, params.content_id)],
    )
    image = Image(**params.model_dump(exclude={"site_id", "sector_id"}), site_id=site_id, sector_id=sector_id)
    ctx.session.add(image)
    return await _image_out(ctx, image)


@action(
    "images.update",
    module=MODULE,
    summary="Change an image record (type, prompt, URL, status, position, task or content)",
    route=Route("PUT", "writer/images/{id}/"),
)
async def update_image(ctx: ActionContext, params: ImageUpdate) -> ImageOut:
    image = await get_or_404(ctx.session, Image, params.id)
    changes = params.model_dump(exclude={"id"}, exclude_unset=True)
    for field, model in (("task_id", Task), ("content_id", Content)):
        if changes.get(field) is not None:
            await in_sector(ctx.session, model, changes[field], image.sector_id, field)
    apply_changes(image, changes, nullable=NULLABLE)
    return await _image_out(ctx, image)


@action(
    "images.delete",
    module=MODULE,
    summary="Delete one image record",
    route=Route("DELETE", "writer/images/{id}/"),
)
async def delete_image(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Image, params.id)
