"""Content maps: which clusters, blueprint taxonomies and attributes a piece of content covers.

Each ``set_*`` action replaces one kind of map for one content; rows that stay keep their ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import ValidationFailed
from storage.models import (
    Cluster,
    Content,
    ContentAttributeMap,
    ContentClusterMap,
    ContentTaxonomyMap,
    SiteBlueprintTaxonomy,
)
from tools.common import ObjectOut, get_or_404
from tools.registry import ALL_ROLES, ActionContext, ActionInput, Route, action
from tools.writer.tasks import MODULE, WriterInput, kind_of, visible_text

MAX_LINKS = 500


class ClusterRole(StrEnum):
    HUB = "hub"
    SUPPORTING = "supporting"
    ATTRIBUTE = "attribute"


class MapSource(StrEnum):
    BLUEPRINT = "blueprint"
    MANUAL = "manual"
    IMPORT = "import"


class ClusterMapOut(ObjectOut):
    cluster_id: int
    role: ClusterRole
    source: str


class TaxonomyMapOut(ObjectOut):
    taxonomy_id: int
    source: str


class AttributeMapOut(ObjectOut):
    name: str
    value: str | None
    source: str


class ContentMapsOut(BaseModel):
    content_id: int
    clusters: list[ClusterMapOut]
    taxonomies: list[TaxonomyMapOut]
    attributes: list[AttributeMapOut]


class ContentIdInput(ActionInput):
    content_id: int = Field(description="Content id")


class ClusterLink(ActionInput):
    cluster_id: int
    role: ClusterRole = ClusterRole.HUB

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``12`` or ``"12:supporting"`` (what the CLI's comma-separated lists hand in)."""
        if isinstance(value, int | str) and not isinstance(value, bool):
            cluster_id, _, role = str(value).partition(":")
            return {"cluster_id": cluster_id.strip(), **({"role": role.strip()} if role else {})}
        return value


class SetClusters(ContentIdInput):
    clusters: list[ClusterLink] = Field(
        max_length=MAX_LINKS, description="Clusters of the content's sector, each with its role"
    )
    source: MapSource = MapSource.MANUAL


class SetTaxonomies(ContentIdInput):
    taxonomy_ids: list[int] = Field(max_length=MAX_LINKS, description="Blueprint taxonomies of the sector")
    source: MapSource = MapSource.MANUAL


class Attribute(WriterInput):
    name: str = Field(min_length=1, max_length=120)
    value: str | None = Field(None, max_length=255)

    _name = field_validator("name")(visible_text)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``"colour=red"`` (what the CLI's comma-separated lists hand in)."""
        if isinstance(value, str):
            name, sep, attr_value = value.partition("=")
            return {"name": name, "value": attr_value if sep else None}
        return value


class SetAttributes(ContentIdInput):
    attributes: list[Attribute] = Field(max_length=MAX_LINKS, description="Name/value pairs")
    source: MapSource = MapSource.MANUAL


async def _maps_out(session: AsyncSession, content_id: int) -> ContentMapsOut:
    async def rows(model: type[Any]) -> Sequence[Any]:
        stmt = select(model).where(model.content_id == content_id).order_by(model.id)
        return (await session.scalars(stmt)).all()

    return ContentMapsOut(
        content_id=content_id,
        clusters=[ClusterMapOut.model_validate(r) for r in await rows(ContentClusterMap)],
        taxonomies=[TaxonomyMapOut.model_validate(r) for r in await rows(ContentTaxonomyMap)],
        attributes=[AttributeMapOut.model_validate(r) for r in await rows(ContentAttributeMap)],
    )


async def _check_in_sector(
    session: AsyncSession, model: type[Any], refs: Sequence[tuple[str, int]], sector_id: int
) -> None:
    """Every ``(field, id)`` must name a visible row of ``model`` in ``sector_id``."""
    ids = {ident for _, ident in refs}
    found = dict((await session.execute(select(model.id, model.sector_id).where(model.id.in_(ids)))).all())
    kind = kind_of(model)
    for field, ident in refs:
        if ident not in found:
            raise ValidationFailed.single(field, f"{kind} {ident} not found")
        if found[ident] != sector_id:
            raise ValidationFailed.single(
                field, f"{kind} {ident} is in sector {found[ident]}, not sector {sector_id}"
            )


async def _replace(
    session: AsyncSession,
    content: Content,
    model: type[Any],
    key: Any,
    wanted: dict[Any, dict[str, Any]],
    source: MapSource,
) -> None:
    """Make ``content``'s rows of ``model`` exactly ``wanted`` (row key → column values)."""
    existing = (await session.scalars(select(model).where(model.content_id == content.id))).all()
    for row in existing:
        if key(row) in wanted:
            row.source = source
            wanted.pop(key(row))
        else:
            await session.delete(row)
    # Deletes first: a row removed under one key may be re-added under the same unique columns.
    await session.flush()
    for values in wanted.values():
        session.add(
            model(
                content_id=content.id,
                site_id=content.site_id,
                sector_id=content.sector_id,
                source=source,
                **values,
            )
        )
    await session.flush()


@action(
    "content_maps.list",
    module=MODULE,
    summary="Show the clusters, taxonomies and attributes a piece of content is mapped to",
    roles=ALL_ROLES,
    route=Route("GET", "writer/content/{content_id}/maps/"),
)
async def list_maps(ctx: ActionContext, params: ContentIdInput) -> ContentMapsOut:
    await get_or_404(ctx.session, Content, params.content_id)
    return await _maps_out(ctx.session, params.content_id)


@action(
    "content_maps.set_clusters",
    module=MODULE,
    summary="Replace the clusters a piece of content covers (role hub, supporting or attribute)",
    route=Route("PUT", "writer/content/{content_id}/maps/clusters/"),
)
async def set_clusters(ctx: ActionContext, params: SetClusters) -> ContentMapsOut:
    content = await get_or_404(ctx.session, Content, params.content_id)
    refs = [(f"clusters.{i}.cluster_id", link.cluster_id) for i, link in enumerate(params.clusters)]
    await _check_in_sector(ctx.session, Cluster, refs, content.sector_id)
    wanted = {
        (link.cluster_id, link.role): {"cluster_id": link.cluster_id, "role": link.role}
        for link in params.clusters
    }
    key = attrgetter("cluster_id", "role")
    await _replace(ctx.session, content, ContentClusterMap, key, wanted, params.source)
    return await _maps_out(ctx.session, content.id)


@action(
    "content_maps.set_taxonomies",
    module=MODULE,
    summary="Replace the site-blueprint taxonomies (categories, tags) a piece of content belongs to",
    route=Route("PUT", "writer/content/{content_id}/maps/taxonomies/"),
)
async def set_taxonomies(ctx: ActionContext, params: SetTaxonomies) -> ContentMapsOut:
    content = await get_or_404(ctx.session, Content, params.content_id)
    refs = [(f"taxonomy_ids.{i}", ident) for i, ident in enumerate(params.taxonomy_ids)]
    await _check_in_sector(ctx.session, SiteBlueprintTaxonomy, refs, content.sector_id)
    wanted = {ident: {"taxonomy_id": ident} for ident in params.taxonomy_ids}
    await _replace(ctx.session, content, ContentTaxonomyMap, attrgetter("taxonomy_id"), wanted, params.source)
    return await _maps_out(ctx.session, content.id)


@action(
    "content_maps.set_attributes",
    module=MODULE,
    summary="Replace the attributes (name/value pairs) of a piece of content",
    route=Route("PUT", "writer/content/{content_id}/maps/attributes/"),
)
async def set_attributes(ctx: ActionContext, params: SetAttributes) -> ContentMapsOut:
    content = await get_or_404(ctx.session, Content, params.content_id)
    wanted = {(a.name, a.value): {"name": a.name, "value": a.value} for a in params.attributes}
    key = attrgetter("name", "value")
    await _replace(ctx.session, content, ContentAttributeMap, key, wanted, params.source)
    return await _maps_out(ctx.session, content.id)
