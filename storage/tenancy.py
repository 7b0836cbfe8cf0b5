"""Tenant isolation enforced by the session, below every action.

A session is bound to one ``TenantContext`` when it is created and never rebound, so its identity
map can only ever hold that tenant's rows. Two hooks keep it that way:

* ``do_orm_execute`` adds the account (and, for editors and viewers, the granted-site) criteria to
  every ORM SELECT, UPDATE and DELETE — including relationship loads, subqueries and CTEs through
  ``with_loader_criteria`` — checks bulk INSERT rows, and refuses statements it cannot scope
  (raw SQL text, Core statements against tables).
* ``before_flush`` sets ``account_id`` on new rows (from their site when they have one), checks the
  sector belongs to the site, caps active sectors per site, and keeps viewers read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.sql.elements import TextClause

from storage.exceptions import (
    FieldError,
    NotFound,
    PermissionDenied,
    TenancyViolation,
    ValidationFailed,
)
from storage.models import (
    MAX_ACTIVE_SECTORS_PER_SITE,
    Account,
    AccountScoped,
    Role,
    Sector,
    Site,
    SiteOwned,
)

TENANT_KEY = "igny8_tenant"
_BYPASS_ROLES = frozenset({Role.DEVELOPER, Role.SYSTEM_BOT})
_PLACEMENT_COLUMNS = frozenset({"account_id", "site_id", "sector_id"})


@dataclass(frozen=True, slots=True)
class TenantContext:
    """Who is acting. ``site_ids`` is ``None`` when every site of the account is reachable."""

    account_id: int
    user_id: int | None
    role: Role
    site_ids: frozenset[int] | None = None
    is_system_account: bool = False

    @classmethod
    def system(cls) -> TenantContext:
        """Unscoped context for bootstrap, authentication and the scheduler; never for a caller."""
        return cls(account_id=0, user_id=None, role=Role.SYSTEM_BOT, is_system_account=True)

    @property
    def sees_all_accounts(self) -> bool:
        return self.is_system_account or self.role in _BYPASS_ROLES

    @property
    def read_only(self) -> bool:
        return self.role == Role.VIEWER

    def can_access_site(self, site_id: int) -> bool:
        return self.site_ids is None or site_id in self.site_ids


class TenantSession(Session):
    """The only session class the app uses; the hooks below listen on it alone."""


def tenant_of(session: Session) -> TenantContext:
    ctx = session.info.get(TENANT_KEY)
    if ctx is None:
        raise TenancyViolation("This session has no tenant; open it with Database.session(ctx).")
    return ctx


def _scope_criteria(ctx: TenantContext) -> list[Any]:
    account_id = ctx.account_id
    criteria = [
        with_loader_criteria(Account, lambda cls: cls.id == account_id, include_aliases=True),
        with_loader_criteria(AccountScoped, lambda cls: cls.account_id == account_id, include_aliases=True),
    ]
    if ctx.site_ids is not None:
        site_ids = tuple(sorted(ctx.site_ids))
        criteria += [
            with_loader_criteria(Site, lambda cls: cls.id.in_(site_ids), include_aliases=True),
            with_loader_criteria(SiteOwned, lambda cls: cls.site_id.in_(site_ids), include_aliases=True),
        ]
    return criteria


def _is_scoped_mapper(state: ORMExecuteState) -> bool:
    mapper = state.bind_mapper
    return mapper is not None and issubclass(mapper.class_, (AccountScoped, Account))


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> Any:
    ctx = tenant_of(state.session)
    if ctx.sees_all_accounts:
        return None
    if isinstance(state.statement, TextClause) or not state.is_orm_statement:
        raise TenancyViolation(
            "Raw SQL and Core statements cannot be tenant-scoped; query mapped classes instead."
        )
    writes = state.is_insert or state.is_update or state.is_delete
    if writes and ctx.read_only:
        raise PermissionDenied("Viewers have read-only access.")
    if state.is_insert:
        return _checked_bulk_insert(state, ctx)
    if state.is_update:
        _refuse_placement_change(state)
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(*_scope_criteria(ctx))
    return None


def _refuse_placement_change(state: ORMExecuteState) -> None:
    """A bulk UPDATE may not move rows to another account, site or sector."""
    if state.is_executemany:
        raise TenancyViolation("Bulk UPDATE by primary key is not tenant-scoped; use update().where().")
    values = state.statement._values or {}  # no public accessor for an UPDATE's SET clause
    names = {getattr(key, "key", key) for key in values}
    if names & _PLACEMENT_COLUMNS:
        raise TenancyViolation("Bulk UPDATE cannot change account, site or sector; update objects.")


def _checked_bulk_insert(state: ORMExecuteState, ctx: TenantContext) -> Any:
    """Set the account on every bulk-inserted row and check its site and sector, like a flush."""
    if not _is_scoped_mapper(state):
        raise PermissionDenied("Only the system can write shared catalogue tables.")
    stmt = state.statement
    if stmt._values or stmt._multi_values:
        raise TenancyViolation("Pass bulk INSERT rows as parameters: session.execute(insert(M), rows).")
    rows: list[dict[str, Any]] = (
        [dict(p) for p in state.parameters]
        if isinstance(state.parameters, list)
        else [dict(state.parameters or {})]
    )
    model = state.bind_mapper.class_
    if issubclass(model, SiteOwned):
        site_accounts = _visible_site_accounts(state.session, {r.get("site_id") for r in rows})
        sector_sites = _sector_sites(state.session, {r.get("sector_id") for r in rows} - {None})
        for row in rows:
            row["account_id"] = site_accounts[row["site_id"]]
            _check_sector(row.get("sector_id"), row["site_id"], sector_sites)
    else:
        for row in rows:
            _check_account(row.setdefault("account_id", ctx.account_id), ctx)
    return state.invoke_statement(params=rows)


def _visible_site_accounts(session: Session, site_ids: Iterable[int | None]) -> dict[int, int]:
    wanted = set(site_ids)
    if None in wanted:
        raise ValidationFailed.single("site_id", "is required")
    with session.no_autoflush:
        found = dict(session.execute(select(Site.id, Site.account_id).where(Site.id.in_(wanted))).all())
    for missing in sorted(wanted - found.keys()):
        raise NotFound("Site", missing)
    return found


def _sector_sites(session: Session, sector_ids: set[int]) -> dict[int, int]:
    if not sector_ids:
        return {}
    with session.no_autoflush:
        rows = session.execute(select(Sector.id, Sector.site_id).where(Sector.id.in_(sector_ids)))
        return dict(rows.all())


def _check_sector(sector_id: int | None, site_id: int, sector_sites: Mapping[int, int]) -> None:
    if sector_id is None:
        return
    if sector_id not in sector_sites:
        raise NotFound("Sector", sector_id)
    if sector_sites[sector_id] != site_id:
        raise ValidationFailed.single("sector_id", f"sector {sector_id} does not belong to site {site_id}")


def _check_account(account_id: int, ctx: TenantContext) -> None:
    if not ctx.sees_all_accounts and account_id != ctx.account_id:
        raise PermissionDenied("Cannot write to another account.")


@event.listens_for(TenantSession, "before_flush")
def _guard_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if not (session.new or session.dirty or session.deleted):
        return
    ctx = tenant_of(session)
    if ctx.read_only:
        raise PermissionDenied("Viewers have read-only access.")
    for obj in list(session.new) + list(session.dirty):
        _place(session, ctx, obj, is_new=obj in session.new)
    for obj in session.deleted:
        if not ctx.sees_all_accounts and not isinstance(obj, AccountScoped | Account):
            raise PermissionDenied("Only the system can change shared catalogue tables.")
    _cap_active_sectors(session)


def _place(session: Session, ctx: TenantContext, obj: object, *, is_new: bool) -> None:
    """Fill and check where a written row lives: account, site, sector."""
    if isinstance(obj, Account):
        if is_new and not ctx.sees_all_accounts:
            raise PermissionDenied("Only the system can create accounts.")
        return
    if not isinstance(obj, AccountScoped):
        if not ctx.sees_all_accounts:
            raise PermissionDenied("Only the system can change shared catalogue tables.")
        return
    if not is_new and not _placement_changed(obj):
        return
    if isinstance(obj, SiteOwned):
        site_accounts = _visible_site_accounts(session, [obj.site_id])
        if not is_new and obj.account_id != site_accounts[obj.site_id]:
            raise PermissionDenied("Cannot move a row to another account.")
        obj.account_id = site_accounts[obj.site_id]
        if not ctx.can_access_site(obj.site_id):
            raise NotFound("Site", obj.site_id)
    elif obj.account_id is None:
        obj.account_id = ctx.account_id
    _check_account(obj.account_id, ctx)
    sector_id = getattr(obj, "sector_id", None)
    if sector_id is not None and not isinstance(obj, Sector):
        site_id = getattr(obj, "site_id", None)
        sector_sites = _sector_sites(session, {sector_id})
        if site_id is None:
            if sector_id not in sector_sites:
                raise NotFound("Sector", sector_id)
        else:
            _check_sector(sector_id, site_id, sector_sites)


def _placement_changed(obj: object) -> bool:
    attrs = inspect(obj).attrs
    return any(name in attrs and attrs[name].history.has_changes() for name in _PLACEMENT_COLUMNS)


def _cap_active_sectors(session: Session) -> None:
    """At most five active sectors per site (the seed's ``Site.can_add_sector``)."""
    activated: dict[int, list[Sector]] = {}
    for obj in list(session.new) + list(session.dirty):
        # A new sector's is_active is None until the column default applies at INSERT.
        if not isinstance(obj, Sector) or obj.is_active is False:
            continue
        if obj in session.new or inspect(obj).attrs["is_active"].history.has_changes():
            activated.setdefault(obj.site_id, []).append(obj)
    for site_id, sectors in activated.items():
        existing_ids = [s.id for s in sectors if s.id is not None]
        query = select(func.count(Sector.id)).where(Sector.site_id == site_id, Sector.is_active)
        if existing_ids:
            query = query.where(Sector.id.not_in(existing_ids))
        with session.no_autoflush:
            already = session.scalar(query) or 0
        if already + len(sectors) > MAX_ACTIVE_SECTORS_PER_SITE:
            raise ValidationFailed(
                [
                    FieldError(
                        "is_active",
                        f"a site can have at most {MAX_ACTIVE_SECTORS_PER_SITE} active sectors; "
                        f"site {site_id} has {already} and this would add {len(sectors)}",
                    )
                ]
            )
