"""Tenant isolation enforced by the session, below every action.

A session is bound to one ``TenantContext`` when it is created and never rebound, so its identity
map can only ever hold that tenant's rows. Two hooks keep it that way:

* ``do_orm_execute`` adds the account (and, for editors and viewers, the granted-site) criteria to
  every ORM SELECT, UPDATE and DELETE — including relationship loads, subqueries and CTEs through
  ``with_loader_criteria`` — checks bulk INSERT rows, and refuses statements it cannot scope
  (raw SQL text, ``from_statement``, Core statements or raw tenant tables inside ORM ones,
  ``ON CONFLICT DO UPDATE``) and writes to the shared catalogue.
* ``before_flush`` sets ``account_id`` on new rows (from their site when they have one), checks the
  sector belongs to the site and every other reference is visible, refuses rows carried over from
  another tenant's session, caps active sectors per site, and keeps viewers read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.orm.context import FromStatement
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnClause, TextClause
from sqlalchemy.sql.selectable import AliasedReturnsRows, Join, Select, SelectBase, TableClause

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
    Base,
    Role,
    Sector,
    Site,
    SiteOwned,
)

TENANT_KEY = "igny8_tenant"
# The session (info) or connection (execution option) was opened for reading only; see ``storage.db``.
READ_ONLY_KEY = "igny8_read_only"
# Execution option for SELECTs that must see the caller's whole account although the caller is
# limited to granted sites: plan limits are per account. The account filter always stays.
ACCOUNT_WIDE = "igny8_account_wide"
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


@lru_cache(maxsize=4096)
def _scope_criteria(ctx: TenantContext, *, account_wide: bool = False) -> tuple[Any, ...]:
    """The loader criteria for one caller, built once per caller (contexts are frozen and hashable)."""
    account_id = ctx.account_id
    criteria = [
        with_loader_criteria(Account, lambda cls: cls.id == account_id, include_aliases=True),
        with_loader_criteria(AccountScoped, lambda cls: cls.account_id == account_id, include_aliases=True),
    ]
    if ctx.site_ids is not None and not account_wide:
        site_ids = tuple(sorted(ctx.site_ids))
        criteria += [
            with_loader_criteria(Site, lambda cls: cls.id.in_(site_ids), include_aliases=True),
            with_loader_criteria(SiteOwned, lambda cls: cls.site_id.in_(site_ids), include_aliases=True),
        ]
    return tuple(criteria)


def _is_scoped_mapper(state: ORMExecuteState) -> bool:
    mapper = state.bind_mapper
    return mapper is not None and issubclass(mapper.class_, (AccountScoped, Account))


def _refuse_writes_when_read_only(session: Session) -> None:
    if session.info.get(READ_ONLY_KEY):
        raise TenancyViolation("This session was opened read-only; writes need Database.transaction(ctx).")


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> Any:
    ctx = tenant_of(state.session)
    if state.is_insert or state.is_update or state.is_delete:
        _refuse_writes_when_read_only(state.session)
    if ctx.sees_all_accounts:
        # Unscoped; but bulk-inserted rows still take their account from their site, as on flush.
        return _placed_bulk_insert(state, ctx) if _is_plain_bulk_insert(state) else None
    _refuse_unscopable(state)
    writes = state.is_insert or state.is_update or state.is_delete
    if writes and ctx.read_only:
        raise PermissionDenied("Viewers have read-only access.")
    if writes and not _is_scoped_mapper(state):
        raise PermissionDenied("Only the system can write shared catalogue tables.")
    if state.is_insert:
        return _checked_bulk_insert(state, ctx)
    if state.is_update:
        _refuse_placement_change(state)
    if state.is_select or state.is_update or state.is_delete:
        account_wide = state.is_select and bool(state.execution_options.get(ACCOUNT_WIDE))
        state.statement = state.statement.options(*_scope_criteria(ctx, account_wide=account_wide))
    return None


@cache
def _tenant_tables() -> frozenset[str]:
    return frozenset(
        m.local_table.name for m in Base.registry.mappers if issubclass(m.class_, AccountScoped | Account)
    )


def _refuse_unscopable(state: ORMExecuteState) -> None:
    """Loader criteria only reach ORM entities: text, ``from_statement`` and raw tables slip past them."""
    stmt = state.statement
    if isinstance(stmt, TextClause | FromStatement) or not state.is_orm_statement:
        raise TenancyViolation(
            "Raw SQL and Core statements cannot be tenant-scoped; query mapped classes instead."
        )
    for element in visitors.iterate(stmt):
        if isinstance(element, TextClause) or (isinstance(element, Select) and _reads_raw_table(element)):
            raise TenancyViolation(
                "Raw SQL text or a raw tenant table (Model.__table__) inside a query cannot be "
                "tenant-scoped; use the mapped class and its attributes."
            )


def _reads_raw_table(select_: Select[Any]) -> bool:
    """Whether a SELECT's columns or FROM name a tenant table directly, not through its mapped class.

    Nested SELECTs are skipped here: ``visitors.iterate`` reaches and checks each of them too.
    """
    pending: list[Any] = [*select_._raw_columns, *select_._from_obj, *(j[0] for j in select_._setup_joins)]
    while pending:
        element = pending.pop()
        if "parentmapper" in getattr(element, "_annotations", ()):
            continue  # reached through a mapped class or relationship: the loader criteria apply
        if isinstance(element, TableClause):
            if element.name in _tenant_tables():
                return True
        elif isinstance(element, ColumnClause):
            pending.append(element.table)
        elif isinstance(element, Join):
            pending += [element.left, element.right]
        elif isinstance(element, AliasedReturnsRows):
            pending.append(element.element)
        elif not isinstance(element, SelectBase) and hasattr(element, "get_children"):
            pending += element.get_children()
    return False


def _refuse_placement_change(state: ORMExecuteState) -> None:
    """A bulk UPDATE may not move rows to another account, site or sector, nor skip the sector cap."""
    if state.is_executemany:
        raise TenancyViolation("Bulk UPDATE by primary key is not tenant-scoped; use update().where().")
    values = state.statement._values or {}  # no public accessor for an UPDATE's SET clause
    # A parameter dict passed to execute() becomes part of the SET clause too.
    names = {getattr(key, "key", key) for key in values} | set(state.parameters or {})
    if names & _PLACEMENT_COLUMNS:
        raise TenancyViolation("Bulk UPDATE cannot change account, site or sector; update objects.")
    if state.bind_mapper.class_ is Sector and "is_active" in names:
        raise ValidationFailed.single(
            "is_active", "activate or deactivate sectors one by one so the per-site cap is checked"
        )


def _is_plain_bulk_insert(state: ORMExecuteState) -> bool:
    """An ORM INSERT of tenant rows passed as parameters, the only kind the hook can place."""
    stmt = state.statement
    return (
        state.is_insert
        and state.is_orm_statement
        and state.bind_mapper is not None
        and issubclass(state.bind_mapper.class_, AccountScoped)
        and not (stmt._values or stmt._multi_values or stmt.select is not None)
    )


def _checked_bulk_insert(state: ORMExecuteState, ctx: TenantContext) -> Any:
    """Refuse the bulk INSERTs the hook cannot check, then place the rows like a flush."""
    if not issubclass(state.bind_mapper.class_, AccountScoped):
        raise PermissionDenied("Only the system can create accounts.")
    if not _is_plain_bulk_insert(state):
        raise TenancyViolation("Pass bulk INSERT rows as parameters: session.execute(insert(M), rows).")
    if hasattr(state.statement._post_values_clause, "update_values_to_set"):
        # The conflicting row may be another tenant's (a clash on its id): never update it.
        raise TenancyViolation("ON CONFLICT DO UPDATE is not tenant-scoped; use DO NOTHING and update().")
    return _placed_bulk_insert(state, ctx)


def check_site_placements(
    session: Session, placements: set[tuple[int | None, int | None, int | None]]
) -> dict[int, int]:
    """Check (site, sector, account) triples of rows about to be inserted: the site visible, the
    sector on that site, any given account the site's. Returns site id -> the site's account."""
    site_accounts = _visible_site_accounts(session, {site for site, _, _ in placements})
    sector_sites = _sector_sites(session, {sector for _, sector, _ in placements} - {None})
    for site_id, sector_id, account_id in placements:
        _check_site_account(account_id, site_accounts[site_id])
        _check_sector(sector_id, site_id, sector_sites)
    return site_accounts


def _placed_bulk_insert(state: ORMExecuteState, ctx: TenantContext) -> Any:
    """Set the account on every bulk-inserted row and check its site, sector and references."""
    model = state.bind_mapper.class_
    rows: list[dict[str, Any]] = (
        [dict(p) for p in state.parameters]
        if isinstance(state.parameters, list)
        else [dict(state.parameters or {})]
    )
    if issubclass(model, SiteOwned):
        placements = {(r.get("site_id"), r.get("sector_id"), r.get("account_id")) for r in rows}
        site_accounts = check_site_placements(state.session, placements)
        for row in rows:
            row["account_id"] = site_accounts[row["site_id"]]
    else:
        for row in rows:
            _check_account(row.setdefault("account_id", ctx.account_id), ctx)
    if not ctx.sees_all_accounts:
        if not issubclass(model, SiteOwned):
            _require_visible(state.session, Sector, {r.get("sector_id") for r in rows})
        for name, target in _references(model):
            _require_visible(state.session, target, {r.get(name) for r in rows})
    if model is Sector:
        for site_id, count in _count_by(r["site_id"] for r in rows if r.get("is_active", True)).items():
            _check_sector_room(state.session, site_id, count)
    return state.invoke_statement(params=rows)


def _count_by(keys: Iterable[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return counts


@cache
def _references(model: type[AccountScoped]) -> tuple[tuple[str, type[AccountScoped]], ...]:
    """Foreign keys of ``model`` to other tenant rows, besides its account, site and sector."""
    classes = {m.local_table: m.class_ for m in Base.registry.mappers}
    mapper = inspect(model)
    refs = []
    for column in mapper.local_table.columns:
        for fk in column.foreign_keys:
            target = classes.get(fk.column.table)
            name = mapper.get_property_by_column(column).key
            if name not in _PLACEMENT_COLUMNS and target is not None and issubclass(target, AccountScoped):
                refs.append((name, target))
    return tuple(refs)


def _require_visible(session: Session, model: type[AccountScoped], ids: Iterable[int | None]) -> None:
    """A row may only point at rows its tenant can see (an API key at another account's user…)."""
    wanted = set(ids) - {None}
    if not wanted:
        return
    with session.no_autoflush:
        found = set(session.scalars(select(model.id).where(model.id.in_(wanted))).all())
    for missing in sorted(wanted - found):
        raise NotFound(model.__name__, missing)


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


def _check_site_account(account_id: int | None, site_account: int) -> None:
    """Callers leave ``account_id`` unset; one that differs from the site's would move the row."""
    if account_id is not None and account_id != site_account:
        raise PermissionDenied("A row belongs to its site's account; cannot write it to another account.")


def _check_account(account_id: int, ctx: TenantContext) -> None:
    if not ctx.sees_all_accounts and account_id != ctx.account_id:
        raise PermissionDenied("Cannot write to another account.")


@event.listens_for(TenantSession, "before_flush")
def _guard_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if not (session.new or session.dirty or session.deleted):
        return
    _refuse_writes_when_read_only(session)
    ctx = tenant_of(session)
    if ctx.read_only:
        raise PermissionDenied("Viewers have read-only access.")
    for obj in list(session.dirty) + list(session.deleted):
        _check_owned(ctx, obj, load=True)
    for obj in list(session.new) + list(session.dirty):
        _place(session, ctx, obj, is_new=obj in session.new)
        _check_references(session, ctx, obj, is_new=obj in session.new)
    for obj in session.deleted:
        if not ctx.sees_all_accounts and not isinstance(obj, AccountScoped | Account):
            raise PermissionDenied("Only the system can change shared catalogue tables.")
    _cap_active_sectors(session)


@event.listens_for(TenantSession, "before_attach")
def _refuse_foreign_object(session: Session, instance: object) -> None:
    """Keep the identity map one tenant's: an object loaded by another tenant's session stays out."""
    if inspect(instance).key is not None:
        _check_owned(tenant_of(session), instance, load=False)


def _check_owned(ctx: TenantContext, obj: object, *, load: bool) -> None:
    """Rows updated, deleted or attached must be this tenant's as they were loaded, before any change.

    ``load`` may emit a (tenant-scoped) SELECT for expired values; before an object is attached
    nothing can be loaded, and a value not known yet (``merge(load=False)``) is left to the flush.
    """
    if ctx.sees_all_accounts or not isinstance(obj, AccountScoped | Account):
        return
    identity = inspect(obj).identity
    own_id = identity[0] if identity else None
    account_id = own_id if isinstance(obj, Account) else _loaded_value(obj, "account_id", load=load)
    site_id = own_id if isinstance(obj, Site) else _loaded_value(obj, "site_id", load=load)
    if account_id is None:
        return
    if account_id != ctx.account_id or (site_id is not None and not ctx.can_access_site(site_id)):
        raise TenancyViolation(
            f"{type(obj).__name__} {own_id} belongs to another tenant; objects never move between sessions."
        )


def _loaded_value(obj: object, name: str, *, load: bool) -> Any:
    """The value as loaded from the database, before any pending change."""
    state = inspect(obj)
    if name not in state.mapper.attrs:
        return None
    attr = state.attrs[name]
    history = attr.load_history() if load else attr.history
    values = history.deleted or history.unchanged or history.added
    return values[0] if values else None


def _check_references(session: Session, ctx: TenantContext, obj: object, *, is_new: bool) -> None:
    if ctx.sees_all_accounts or not isinstance(obj, AccountScoped):
        return
    attrs = inspect(obj).attrs
    for name, target in _references(type(obj)):
        if is_new or attrs[name].history.has_changes():
            _require_visible(session, target, [getattr(obj, name)])


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
        site_account = _visible_site_accounts(session, [obj.site_id])[obj.site_id]
        _check_site_account(obj.account_id, site_account)
        obj.account_id = site_account
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
        attrs = inspect(obj).attrs
        # Moving an active sector to another site adds an active sector there too.
        if obj in session.new or any(attrs[n].history.has_changes() for n in ("is_active", "site_id")):
            activated.setdefault(obj.site_id, []).append(obj)
    for site_id, sectors in activated.items():
        _check_sector_room(session, site_id, len(sectors), [s.id for s in sectors if s.id is not None])


def _check_sector_room(
    session: Session, site_id: int, adding: int, excluding: list[int] | None = None
) -> None:
    query = select(func.count(Sector.id)).where(Sector.site_id == site_id, Sector.is_active)
    if excluding:
        query = query.where(Sector.id.not_in(excluding))
    with session.no_autoflush:
        already = session.scalar(query) or 0
    if already + adding > MAX_ACTIVE_SECTORS_PER_SITE:
        raise ValidationFailed(
            [
                FieldError(
                    "is_active",
                    f"a site can have at most {MAX_ACTIVE_SECTORS_PER_SITE} active sectors; "
                    f"site {site_id} has {already} and this would add {adding}",
                )
            ]
        )
