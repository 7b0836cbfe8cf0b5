"""The seed's auth module as actions: the caller's account, users, sites, sectors, site access."""

from __future__ import annotations

from datetime import datetime

from pydantic import EmailStr, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import PermissionDenied, ValidationFailed
from storage.models import Account, Industry, Plan, Role, Sector, Site, SiteUserAccess, User
from tools import billing
from tools.accounts import IssuedKey, issue_api_key, slugify
from tools.common import (
    BulkResult,
    IdInput,
    ObjectId,
    ObjectOut,
    Page,
    PageInput,
    apply_changes,
    delete_one,
    get_or_404,
    order_by,
    paginate,
)
from tools.registry import ADMIN_ROLES, ALL_ROLES, ActionContext, ActionInput, NoInput, Route, action

MODULE = "auth"


class MeOut(ObjectOut):
    account_id: int
    account_name: str
    account_slug: str
    plan: str | None
    credits: int
    status: str
    user_id: int | None
    role: Role
    site_ids: list[int] | None = Field(description="Granted sites; null means every site")


@action(
    "accounts.me",
    module=MODULE,
    summary="Who am I: account, plan, credits, role",
    roles=ALL_ROLES,
    route=Route("GET", "auth/accounts/me/"),
)
async def me(ctx: ActionContext, params: NoInput) -> MeOut:
    account = await get_or_404(ctx.session, Account, ctx.tenant.account_id)
    plan = await ctx.session.get(Plan, account.plan_id) if account.plan_id else None
    return MeOut(
        account_id=account.id,
        account_name=account.name,
        account_slug=account.slug,
        plan=plan.slug if plan else None,
        credits=account.credits,
        status=account.status,
        user_id=ctx.tenant.user_id,
        role=ctx.tenant.role,
        site_ids=sorted(ctx.tenant.site_ids) if ctx.tenant.site_ids is not None else None,
    )


# --- sites -------------------------------------------------------------------------------------


class SiteOut(ObjectOut):
    id: int
    name: str
    slug: str
    domain: str | None
    industry_id: int | None
    is_active: bool
    status: str
    wp_url: str | None
    active_sectors: int = 0
    created_at: datetime


class SiteCreate(ActionInput):
    name: str = Field(min_length=1, max_length=255)
    slug: str | None = Field(None, max_length=255, description="Defaults to the name, slugified")
    domain: str | None = Field(None, max_length=500)
    industry_id: int | None = None
    wp_url: str | None = Field(None, max_length=500)


class SiteUpdate(ActionInput):
    id: int
    name: str | None = Field(None, min_length=1, max_length=255)
    domain: str | None = None
    industry_id: int | None = None
    is_active: bool | None = None
    wp_url: str | None = None


ACTIVE_SECTORS = (
    select(func.count(Sector.id))
    .where(Sector.site_id == Site.id, Sector.is_active)
    .correlate(Site)
    .scalar_subquery()
)


def _site_out(site: Site, active_sectors: int) -> SiteOut:
    out = SiteOut.model_validate(site)
    out.active_sectors = active_sectors
    return out


@action(
    "sites.list",
    module=MODULE,
    summary="List the sites you can reach",
    roles=ALL_ROLES,
    route=Route("GET", "auth/sites/"),
)
async def list_sites(ctx: ActionContext, params: PageInput) -> Page[SiteOut]:
    stmt = select(Site, ACTIVE_SECTORS)
    if params.search:
        stmt = stmt.where(Site.name.icontains(params.search, autoescape=True))
    stmt = order_by(
        stmt, params.ordering, {"name": Site.name, "created_at": Site.created_at}, "name", Site.id
    )
    return await paginate(ctx.session, stmt, params, lambda row: _site_out(*row))


@action(
    "sites.get",
    module=MODULE,
    summary="Show one site",
    roles=ALL_ROLES,
    route=Route("GET", "auth/sites/{id}/"),
)
async def get_site(ctx: ActionContext, params: IdInput) -> SiteOut:
    site = await get_or_404(ctx.session, Site, params.id)
    return _site_out(site, await ctx.session.scalar(select(ACTIVE_SECTORS).where(Site.id == site.id)) or 0)


async def _check_industry(ctx: ActionContext, industry_id: int | None) -> None:
    if industry_id is not None and await ctx.session.get(Industry, industry_id) is None:
        raise ValidationFailed.single("industry_id", f"industry {industry_id} not found")


@action(
    "sites.create",
    module=MODULE,
    summary="Create a site",
    roles=ADMIN_ROLES,
    route=Route("POST", "auth/sites/"),
)
async def create_site(ctx: ActionContext, params: SiteCreate) -> SiteOut:
    await _check_industry(ctx, params.industry_id)
    await billing.ensure_within_plan(ctx.session, "sites", 1)
    slug = slugify(params.slug or params.name)
    if await ctx.session.scalar(
        select(Site.id).where(Site.slug == slug, Site.account_id == ctx.tenant.account_id)
    ):
        raise ValidationFailed.single("slug", f"you already have a site with slug {slug!r}")
    site = Site(**params.model_dump(exclude={"slug"}), slug=slug)
    ctx.session.add(site)
    await ctx.session.flush()
    await ctx.session.refresh(site)
    return _site_out(site, 0)


@action(
    "sites.update",
    module=MODULE,
    summary="Change a site",
    roles=ADMIN_ROLES,
    route=Route("PUT", "auth/sites/{id}/"),
)
async def update_site(ctx: ActionContext, params: SiteUpdate) -> SiteOut:
    site = await get_or_404(ctx.session, Site, params.id)
    await _check_industry(ctx, params.industry_id)
    apply_changes(
        site,
        params.model_dump(exclude={"id"}, exclude_unset=True),
        nullable={"domain", "industry_id", "wp_url"},
    )
    await ctx.session.flush()
    return await get_site(ctx, IdInput(id=site.id))


@action(
    "sites.delete",
    module=MODULE,
    summary="Delete a site and everything in it",
    roles=ADMIN_ROLES,
    confirm=True,
    route=Route("DELETE", "auth/sites/{id}/"),
)
async def delete_site(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Site, params.id)


# --- sectors -----------------------------------------------------------------------------------


class SectorOut(ObjectOut):
    id: int
    site_id: int
    name: str
    slug: str
    industry_sector_id: int | None
    is_active: bool
    status: str
    created_at: datetime


class SectorCreate(ActionInput):
    site_id: ObjectId
    name: str = Field(min_length=1, max_length=255)
    slug: str | None = Field(None, max_length=255)
    industry_sector_id: ObjectId | None = None
    is_active: bool = True


class SectorUpdate(ActionInput):
    id: int
    name: str | None = Field(None, min_length=1, max_length=255)
    is_active: bool | None = None
    industry_sector_id: ObjectId | None = None


class SectorListInput(PageInput):
    site_id: ObjectId | None = None
    is_active: bool | None = None


async def _flush_sector(session: AsyncSession, sector: Sector) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise ValidationFailed.single("slug", f"this site already has a sector {sector.slug!r}") from None
    await session.refresh(sector)


@action(
    "sectors.list",
    module=MODULE,
    summary="List sectors of your sites",
    roles=ALL_ROLES,
    route=Route("GET", "auth/sectors/"),
)
async def list_sectors(ctx: ActionContext, params: SectorListInput) -> Page[SectorOut]:
    stmt = select(Sector)
    if params.site_id is not None:
        stmt = stmt.where(Sector.site_id == params.site_id)
    if params.is_active is not None:
        stmt = stmt.where(Sector.is_active == params.is_active)
    if params.search:
        stmt = stmt.where(Sector.name.icontains(params.search, autoescape=True))
    stmt = order_by(
        stmt, params.ordering, {"name": Sector.name, "created_at": Sector.created_at}, "name", Sector.id
    )
    return await paginate(ctx.session, stmt, params, lambda row: SectorOut.model_validate(row[0]))


@action(
    "sectors.get",
    module=MODULE,
    summary="Show one sector",
    roles=ALL_ROLES,
    route=Route("GET", "auth/sectors/{id}/"),
)
async def get_sector(ctx: ActionContext, params: IdInput) -> SectorOut:
    return SectorOut.model_validate(await get_or_404(ctx.session, Sector, params.id))


@action(
    "sectors.create",
    module=MODULE,
    summary="Add a sector to a site (at most 5 active)",
    roles=ADMIN_ROLES,
    route=Route("POST", "auth/sectors/"),
)
async def create_sector(ctx: ActionContext, params: SectorCreate) -> SectorOut:
    await get_or_404(ctx.session, Site, params.site_id)
    sector = Sector(**params.model_dump(exclude={"slug"}), slug=slugify(params.slug or params.name))
    ctx.session.add(sector)
    await _flush_sector(ctx.session, sector)
    return SectorOut.model_validate(sector)


@action(
    "sectors.update",
    module=MODULE,
    summary="Rename, activate or deactivate a sector",
    roles=ADMIN_ROLES,
    route=Route("PUT", "auth/sectors/{id}/"),
)
async def update_sector(ctx: ActionContext, params: SectorUpdate) -> SectorOut:
    sector = await get_or_404(ctx.session, Sector, params.id)
    apply_changes(
        sector, params.model_dump(exclude={"id"}, exclude_unset=True), nullable={"industry_sector_id"}
    )
    await _flush_sector(ctx.session, sector)
    return SectorOut.model_validate(sector)


@action(
    "sectors.delete",
    module=MODULE,
    summary="Delete a sector and its keywords, clusters, ideas",
    roles=ADMIN_ROLES,
    confirm=True,
    route=Route("DELETE", "auth/sectors/{id}/"),
)
async def delete_sector(ctx: ActionContext, params: IdInput) -> BulkResult:
    return await delete_one(ctx.session, Sector, params.id)


# --- users and site access ---------------------------------------------------------------------


class UserOut(ObjectOut):
    id: int
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class UserCreated(UserOut):
    api_key: str | None = Field(None, description="Shown once, when requested")


class UserCreate(ActionInput):
    email: EmailStr
    role: Role = Role.EDITOR
    site_ids: list[int] = Field(default_factory=list, description="Sites to grant (editors, viewers)")
    with_api_key: bool = False


class SiteAccessInput(ActionInput):
    user_id: ObjectId
    site_id: ObjectId


class SiteAccessOut(ObjectOut):
    id: int
    user_id: int
    site_id: int


_GRANTABLE = {
    Role.OWNER: {Role.ADMIN, Role.EDITOR, Role.VIEWER},
    Role.ADMIN: {Role.EDITOR, Role.VIEWER},
    Role.DEVELOPER: {Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER},
    Role.SYSTEM_BOT: {Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER},
}


@action(
    "users.list",
    module=MODULE,
    summary="List users of your account",
    roles=ADMIN_ROLES,
    route=Route("GET", "auth/users/"),
)
async def list_users(ctx: ActionContext, params: PageInput) -> Page[UserOut]:
    stmt = select(User)
    if params.search:
        stmt = stmt.where(User.email.icontains(params.search, autoescape=True))
    stmt = order_by(
        stmt, params.ordering, {"email": User.email, "created_at": User.created_at}, "email", User.id
    )
    return await paginate(ctx.session, stmt, params, lambda row: UserOut.model_validate(row[0]))


@action(
    "users.create",
    module=MODULE,
    summary="Add a user to your account with a role and sites",
    roles=ADMIN_ROLES,
    route=Route("POST", "auth/users/"),
)
async def create_user(ctx: ActionContext, params: UserCreate) -> UserCreated:
    if params.role not in _GRANTABLE.get(ctx.tenant.role, set()):
        raise PermissionDenied(f"A {ctx.tenant.role} cannot create a {params.role}.")
    await billing.ensure_within_plan(ctx.session, "users", 1)
    user = User(email=params.email.lower(), username=params.email.lower(), role=params.role)
    ctx.session.add(user)
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        raise ValidationFailed.single("email", f"{params.email} is already registered") from None
    for site_id in dict.fromkeys(params.site_ids):
        await get_or_404(ctx.session, Site, site_id)
        ctx.session.add(SiteUserAccess(user_id=user.id, site_id=site_id, granted_by_id=ctx.tenant.user_id))
    await ctx.session.flush()
    await ctx.session.refresh(user)
    key = await issue_api_key(ctx.session, user) if params.with_api_key else None
    return UserCreated.model_validate(
        {**UserOut.model_validate(user).model_dump(), "api_key": key.api_key if key else None}
    )


@action(
    "site_access.grant",
    module=MODULE,
    summary="Give an editor or viewer access to a site",
    roles=ADMIN_ROLES,
    route=Route("POST", "auth/site-access/"),
)
async def grant_site_access(ctx: ActionContext, params: SiteAccessInput) -> SiteAccessOut:
    await get_or_404(ctx.session, User, params.user_id)
    await get_or_404(ctx.session, Site, params.site_id)
    existing = await ctx.session.scalar(
        select(SiteUserAccess).where(
            SiteUserAccess.user_id == params.user_id, SiteUserAccess.site_id == params.site_id
        )
    )
    if existing is None:
        existing = SiteUserAccess(**params.model_dump(), granted_by_id=ctx.tenant.user_id)
        ctx.session.add(existing)
        await ctx.session.flush()
    return SiteAccessOut.model_validate(existing)


@action(
    "site_access.revoke",
    module=MODULE,
    summary="Take away a user's access to a site",
    roles=ADMIN_ROLES,
    route=Route("POST", "auth/site-access/revoke/"),
)
async def revoke_site_access(ctx: ActionContext, params: SiteAccessInput) -> BulkResult:
    await get_or_404(ctx.session, User, params.user_id)
    await get_or_404(ctx.session, Site, params.site_id)
    grant = await ctx.session.scalar(
        select(SiteUserAccess).where(
            SiteUserAccess.user_id == params.user_id, SiteUserAccess.site_id == params.site_id
        )
    )
    if grant is not None:
        await ctx.session.delete(grant)
    return BulkResult(requested=1, affected=int(grant is not None))


@action(
    "api_keys.create",
    module=MODULE,
    summary="Issue yourself another API key",
    route=Route("POST", "auth/api-keys/"),
)
async def create_api_key(ctx: ActionContext, params: NoInput) -> IssuedKey:
    user = await get_or_404(ctx.session, User, ctx.tenant.user_id or 0)
    return await issue_api_key(ctx.session, user)
