"""Pieces every module's actions share: pagination, ordering, lookups that 404 across tenants."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.exceptions import NotFound, ValidationFailed
from storage.models import Base
from tools.registry import ActionInput

M = TypeVar("M", bound=Base)
T = TypeVar("T")
U = TypeVar("U")

MAX_PAGE_SIZE = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_INT = 2_147_483_647  # INTEGER columns are 32-bit on PostgreSQL; bigger values fail the whole write
MAX_ID = 2**63 - 1  # ids are BIGINT (SQLite: 64-bit INTEGER); a bigger number is a driver error, not a 404

ObjectId = Annotated[int, Field(ge=1, le=MAX_ID)]


class ObjectOut(BaseModel):
    """Base for outputs read straight off ORM rows (their timestamps already UTC: ``UTCDateTime``)."""

    model_config = ConfigDict(from_attributes=True)


class IdInput(ActionInput):
    id: ObjectId = Field(description="Object id")


class IdsInput(ActionInput):
    ids: list[ObjectId] = Field(min_length=1, max_length=10_000, description="Object ids")


class PageInput(ActionInput):
    page: int = Field(1, ge=1, le=10_000_000, description="1-based page number")
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE, description="Rows per page")
    search: str | None = Field(None, max_length=255, description="Case-insensitive substring match")
    ordering: str | None = Field(None, description="Field to order by; prefix '-' for descending")

    @field_validator("search")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        """Control characters can match nothing, and PostgreSQL refuses NUL in a query."""
        return _CONTROL.sub("", value) if value else value


class Page(BaseModel, Generic[T]):
    count: int
    page: int
    page_size: int
    next: int | None = Field(description="Next page number, if any")
    previous: int | None = Field(description="Previous page number, if any")
    results: list[T]

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        """The same page with each result converted (rows read first, outputs built after)."""
        fields = {name: getattr(self, name) for name in Page.model_fields if name != "results"}
        return Page(**fields, results=[convert(row) for row in self.results])


class BulkResult(BaseModel):
    requested: int
    affected: int
    not_found: list[int] = Field(default_factory=list)


async def get_or_404(session: AsyncSession, model: type[M], ident: int) -> M:
    """Load one row; rows of other tenants are invisible, so they 404 like missing ones."""
    obj = await session.get(model, ident)
    if obj is None:
        raise NotFound(model.__name__, ident)
    return obj


async def all_visible(session: AsyncSession, model: type[M], ids: Sequence[int], field: str) -> dict[int, M]:
    """Rows by id; an id that is missing — or another tenant's, which looks the same — fails naming
    ``field``."""
    found = {row.id: row for row in (await session.scalars(select(model).where(model.id.in_(ids)))).all()}
    if missing := set(ids) - found.keys():
        raise ValidationFailed.single(field, f"{model.__name__} not found: {sorted(missing)[:10]}")
    return found


async def delete_one(session: AsyncSession, model: type[Base], ident: int) -> BulkResult:
    """Delete one visible row (404 otherwise), the body of every ``*.delete`` action."""
    await session.delete(await get_or_404(session, model, ident))
    return BulkResult(requested=1, affected=1)


def filtered(
    model: type[Base],
    params: PageInput,
    equal: Sequence[str],
    search: Sequence[InstrumentedAttribute[Any]] = (),
) -> Select[Any]:
    """``select(model)`` narrowed by the params' equality filters that are set, and by ``search``
    (a case-insensitive substring of any of the given columns)."""
    stmt = select(model)
    for name in equal:
        if (value := getattr(params, name)) is not None:
            stmt = stmt.where(getattr(model, name) == value)
    if search and params.search:
        stmt = stmt.where(or_(*(column.icontains(params.search, autoescape=True) for column in search)))
    return stmt


def order_by(
    stmt: Select[Any],
    ordering: str | None,
    allowed: Mapping[str, InstrumentedAttribute[Any]],
    default: str,
    tiebreak: InstrumentedAttribute[Any],
) -> Select[Any]:
    """Order by one allowed field, unknown (NULL) values last in both directions on every backend.

    SQLite puts NULLs first and PostgreSQL last when ascending, so without ``NULLS LAST`` the same
    request would page differently on each; the tiebreak keeps pages stable. A NOT NULL column
    is ordered plainly, so an index on (…, column DESC, id DESC) can serve the page.
    """
    key = ordering or default
    descending = key.startswith("-")
    column = allowed.get(key[1:] if descending else key)
    if column is None:
        raise ValidationFailed.single(
            "ordering", f"cannot order by {key!r}; use one of {', '.join(sorted(allowed))} (prefix '-')"
        )
    expr = column.desc() if descending else column.asc()
    if getattr(column.expression, "nullable", True):  # computed values (counts, sums) may be NULL
        expr = expr.nulls_last()
    return stmt.order_by(expr, tiebreak.desc() if descending else tiebreak.asc())


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    params: PageInput,
    to_out: Callable[[Any], T],
) -> Page[T]:
    """One page of ``stmt`` and the total, in one round trip: the total rides along as an
    uncorrelated subquery (evaluated once) in an extra last column, which ``to_out`` never sees.
    Only a page past the end, which has no row to carry it, counts separately."""
    count = select(func.count()).select_from(stmt.order_by(None).subquery())
    offset = (params.page - 1) * params.page_size
    page = stmt.add_columns(count.scalar_subquery()).offset(offset).limit(params.page_size)
    rows: Sequence[Any] = (await session.execute(page)).all()
    total = rows[0][-1] if rows else (await session.scalar(count) or 0) if offset else 0
    # Unparametrised on purpose: pydantic keeps ``Page[T]`` classes in a weak cache, so building
    # one per request can mean re-creating the class per request.
    return Page(
        count=total,
        page=params.page,
        page_size=params.page_size,
        next=params.page + 1 if offset + len(rows) < total else None,
        previous=params.page - 1 if params.page > 1 else None,
        results=[to_out(row[:-1]) for row in rows],
    )


def apply_changes(obj: Base, changes: Mapping[str, Any], nullable: Collection[str] = ()) -> None:
    """Apply a partial update; ``None`` clears only fields that may be empty."""
    for name, value in changes.items():
        if value is None and name not in nullable:
            raise ValidationFailed.single(name, "cannot be empty")
    for name, value in changes.items():
        setattr(obj, name, value)


async def site_sector_names(session: AsyncSession, sector_ids: Collection[int]) -> dict[int, tuple[str, str]]:
    """sector id -> (site name, sector name), for prompts and messages."""
    from storage.models import Sector, Site

    rows = await session.execute(
        select(Sector.id, Site.name, Sector.name)
        .join(Site, Site.id == Sector.site_id)
        .where(Sector.id.in_(list(sector_ids)))
    )
    return {sector_id: (site, sector) for sector_id, site, sector in rows.all()}
