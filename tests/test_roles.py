"""The role matrix (seed: developers and the system see every account; owners and admins their
account; editors and viewers only the sites granted to them; viewers only read).

One account ("org") has two populated sites: ``main`` is granted to its editor and viewer, ``other``
to nobody. ``stranger`` is another account; the developer belongs to a third one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert, select

from storage.db import Database
from storage.exceptions import NotFound, PermissionDenied, PlanLimitExceeded
from storage.models import Cluster, Keyword, Role, Sector, Site, User
from storage.tenancy import TenantContext
from tests.factories import TenantFactory
from tests.tenancy_support import (
    ARGS,
    GHOST,
    Side,
    assert_hidden,
    attempt,
    build_side,
    call,
    populate,
    references,
    snapshot,
    swapped,
    text_of,
)
from tools import billing
from tools.accounts import tenant_for_user_id
from tools.registry import (
    ADMIN_ROLES,
    ALL_ROLES,
    WRITE_ROLES,
    ActionContext,
    parse_input,
    registry,
)

# What each action is, in the seed's terms; its declared roles must match.
ACCESS_ROLES = {
    "read": ALL_ROLES,
    "write": WRITE_ROLES,
    "admin": ADMIN_ROLES,
    "platform": frozenset({Role.DEVELOPER, Role.SYSTEM_BOT}),
}
_READ = """accounts.me sites.list sites.get sectors.list sectors.get keywords.list keywords.get
keywords.export_csv clusters.list clusters.get ideas.list ideas.get tasks.list tasks.get content.list
content.get content_maps.list images.list images.get author_profiles.list strategies.list prompts.list
prompts.get billing.balance billing.transactions billing.usage"""
_WRITE = """api_keys.create keywords.create keywords.update keywords.delete keywords.bulk_delete
keywords.bulk_update_status keywords.import_csv keywords.auto_cluster clusters.create clusters.update
clusters.delete clusters.auto_generate_ideas ideas.create ideas.update ideas.delete tasks.create
tasks.update tasks.delete tasks.bulk_delete tasks.bulk_update tasks.create_from_ideas
tasks.auto_generate_content content.create content.update content.delete content.generate_image_prompts
content_maps.set_clusters content_maps.set_taxonomies content_maps.set_attributes images.create
images.update images.delete images.generate_images"""
_ADMIN = """sites.create sites.update sites.delete sectors.create sectors.update sectors.delete users.list
users.create site_access.grant site_access.revoke author_profiles.create author_profiles.update
author_profiles.delete strategies.create strategies.update strategies.delete prompts.save
prompts.reset_to_default integrations.get integrations.save integrations.test_openai integrations.test_runware
integrations.generate_image"""
_PLATFORM = "billing.add_credits"
ACCESS = {
    name: kind
    for kind, names in (("read", _READ), ("write", _WRITE), ("admin", _ADMIN), ("platform", _PLATFORM))
    for name in names.split()
}
# Kinds of rows that live in a site; an editor's other references (users…) are account-wide.
SITE_KINDS = {
    "Site",
    "Sector",
    "Keyword",
    "Cluster",
    "ContentIdea",
    "Task",
    "Content",
    "Image",
    "SiteBlueprintTaxonomy",
}
ROLES_UNDER_TEST = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER, Role.DEVELOPER)


@dataclass
class Org:
    main: Side
    other: Side
    stranger: Side
    as_: dict[Role, TenantContext]


async def developer(db: Database, account_id: int) -> TenantContext:
    """A developer user: only the system may create one."""
    async with db.transaction(TenantContext.system()) as s:
        name = f"dev-{uuid.uuid4().hex[:8]}"
        user = User(account_id=account_id, email=f"{name}@example.com", username=name, role=Role.DEVELOPER)
        s.add(user)
        await s.flush()
        user_id = user.id
    return await tenant_for_user_id(db, user_id)


@pytest.fixture(scope="module")
async def org(db: Database) -> Org:
    factory = TenantFactory(db)
    t = await factory.create()
    main = await populate(t, t.site_id, t.sector_id, "main")
    site2 = (await call(t, "sites.create", name="second")).id
    sector2 = (await call(t, "sectors.create", site_id=site2, name="second")).id
    other = await populate(t, site2, sector2, "other")
    stranger = await build_side(factory, "stranger")
    as_ = {
        Role.OWNER: t.owner,
        Role.ADMIN: await t.user(Role.ADMIN),
        Role.EDITOR: await t.user(Role.EDITOR, (main.site,)),
        Role.VIEWER: await t.user(Role.VIEWER, (main.site,)),
        Role.DEVELOPER: await developer(db, (await factory.create()).account_id),
    }
    return Org(main, other, stranger, as_)


def test_declared_roles_match_the_access_table() -> None:
    registered = set(registry.names())
    assert registered - set(ACCESS) == set(), "say in ACCESS who may run the new action(s)"
    assert set(ACCESS) - registered == set(), "these actions no longer exist; drop them from ACCESS"
    wrong = {
        act.name: (ACCESS[act.name], sorted(act.roles))
        for act in registry
        if act.roles != ACCESS_ROLES[ACCESS[act.name]]
    }
    assert wrong == {}
    assert {act.name for act in registry if act.read_only} == {n for n, k in ACCESS.items() if k == "read"}


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
async def test_each_role_is_refused_every_action_outside_its_role(db: Database, org: Org, role: Role) -> None:
    refused = [act.name for act in registry if role not in act.roles and act.name in ARGS]
    before = await snapshot(db, org.main.account)
    for action in refused:
        with pytest.raises(PermissionDenied, match=str(role)):
            await call(org.main.tenant, action, as_=org.as_[role], confirmed=True, **ARGS[action](org.main))
    assert await snapshot(db, org.main.account) == before
    assert bool(refused) == (role != Role.DEVELOPER), refused


# Account-wide rows (not in any site): every role of the account sees all of them.
ACCOUNT_WIDE_LISTS = {"author_profiles.list", "strategies.list"}
# Declared for admins because of what they show, not because they write.
ADMIN_READS = {
    "integrations.get": "shows integration settings",
    "integrations.test_openai": "tries the configured server",
    "integrations.test_runware": "tries the configured key",
    "users.list": "lists the account's users",
}


@pytest.mark.parametrize("action", sorted(n for n, kind in ACCESS.items() if kind == "read"))
async def test_viewer_runs_every_read_action_on_its_site(db: Database, org: Org, action: str) -> None:
    out = text_of(await call(org.main.tenant, action, as_=org.as_[Role.VIEWER], **ARGS[action](org.main)))
    assert org.stranger.tag not in out
    if action not in ACCOUNT_WIDE_LISTS:
        assert org.other.tag not in out


async def _writing_args(org: Org, action: str) -> dict[str, Any]:
    """Arguments with which ``action`` really writes (some are no-ops with the shared ones)."""
    main = org.main
    if action == "site_access.grant":  # a grant that does not exist yet
        return {"user_id": org.other.one("User"), "site_id": main.site}
    if action == "tasks.create_from_ideas":  # an idea with no task yet
        where = {"site_id": main.site, "sector_id": main.sector}
        return {"ids": [(await call(main.tenant, "ideas.create", **where, idea_title="fresh")).id]}
    if action == "prompts.reset_to_default":  # an override to remove
        await call(main.tenant, "prompts.save", **ARGS["prompts.save"](main))
    return ARGS[action](main)


@pytest.mark.parametrize(
    "action", sorted(n for n, kind in ACCESS.items() if kind != "read" and n not in ADMIN_READS)
)
async def test_viewer_sessions_refuse_writes_even_past_the_role_check(
    db: Database, org: Org, action: str
) -> None:
    """Defence in depth: the handler itself, run in a viewer's session, cannot write."""
    viewer = org.as_[Role.VIEWER]
    act = registry.get(action)
    params = parse_input(act.input_model, await _writing_args(org, action))
    with pytest.raises(PermissionDenied):
        if act.long:
            async with db.session(viewer) as session:
                await act.handler(ActionContext(action, viewer, session, db), params)
        else:
            async with db.transaction(viewer) as session:
                await act.handler(ActionContext(action, viewer, session, db), params)


EDITOR_ACTIONS = sorted(
    n
    for n, kind in ACCESS.items()
    if Role.EDITOR in ACCESS_ROLES[kind] and set(references(registry.get(n)).values()) & SITE_KINDS
)


@pytest.mark.parametrize("action", EDITOR_ACTIONS)
async def test_editor_cannot_reach_a_site_it_was_not_granted(db: Database, org: Org, action: str) -> None:
    editor = org.as_[Role.EDITOR]
    main, other = org.main, org.other
    before = await snapshot(db, other.account, site_id=other.site)
    for field, kind in references(registry.get(action)).items():
        if kind not in SITE_KINDS:
            continue
        got = await attempt(main.tenant, action, swapped(action, main, field, other.one(kind)), as_=editor)
        ghost = await attempt(main.tenant, action, swapped(action, main, field, GHOST), as_=editor)
        assert_hidden(action, field, got, ghost, other, other.one(kind))
    assert await snapshot(db, other.account, site_id=other.site) == before


async def test_editor_lists_show_only_granted_sites(db: Database, org: Org) -> None:
    editor = org.as_[Role.EDITOR]
    sites = await call(org.main.tenant, "sites.list", as_=editor)
    assert [s.id for s in sites.results] == [org.main.site]
    sectors = await call(org.main.tenant, "sectors.list", as_=editor)
    assert {s.site_id for s in sectors.results} == {org.main.site}
    for action in ("keywords.list", "keywords.export_csv", "clusters.list", "ideas.list", "tasks.list",
                   "content.list", "images.list"):  # fmt: skip
        out = text_of(await call(org.main.tenant, action, as_=editor))
        assert org.main.tag in out and org.other.tag not in out, action
    me = await call(org.main.tenant, "accounts.me", as_=editor)
    assert me.site_ids == [org.main.site] and me.account_id == org.main.account


async def test_editor_writes_to_its_granted_site(db: Database, org: Org) -> None:
    editor = org.as_[Role.EDITOR]
    kw = await call(org.main.tenant, "keywords.create", as_=editor, **ARGS["keywords.create"](org.main))
    assert kw.site_id == org.main.site
    updated = await call(org.main.tenant, "keywords.update", as_=editor, id=kw.id, volume=3)
    assert updated.volume == 3


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
async def test_admins_and_owners_reach_every_site_of_their_account_only(
    db: Database, org: Org, role: Role
) -> None:
    ctx, main, other, stranger = org.as_[role], org.main, org.other, org.stranger
    sites = await call(main.tenant, "sites.list", as_=ctx)
    assert {s.id for s in sites.results} == {main.site, other.site}
    listed = text_of(await call(main.tenant, "keywords.list", as_=ctx, page_size=500))
    assert main.tag in listed and other.tag in listed and stranger.tag not in listed
    kw = await call(main.tenant, "keywords.create", as_=ctx, **ARGS["keywords.create"](other))
    assert kw.site_id == other.site
    sector = await call(main.tenant, "sectors.create", as_=ctx, **ARGS["sectors.create"](other))
    assert sector.site_id == other.site
    got = await attempt(main.tenant, "sites.get", {"id": stranger.site}, as_=ctx)
    ghost = await attempt(main.tenant, "sites.get", {"id": GHOST}, as_=ctx)
    assert_hidden("sites.get", "id", got, ghost, stranger, stranger.site)


@pytest.mark.parametrize(
    ("creator", "new_role", "allowed"),
    [
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.EDITOR, True),
        (Role.OWNER, Role.VIEWER, True),
        (Role.OWNER, Role.OWNER, False),
        (Role.OWNER, Role.DEVELOPER, False),
        (Role.OWNER, Role.SYSTEM_BOT, False),
        (Role.ADMIN, Role.EDITOR, True),
        (Role.ADMIN, Role.VIEWER, True),
        (Role.ADMIN, Role.ADMIN, False),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.DEVELOPER, False),
        (Role.ADMIN, Role.SYSTEM_BOT, False),
    ],
)
async def test_who_may_create_which_users(
    db: Database, org: Org, creator: Role, new_role: Role, allowed: bool
) -> None:
    args = {"email": f"{uuid.uuid4().hex[:10]}@example.com", "role": new_role}
    before = await snapshot(db, org.main.account)
    got = await attempt(org.main.tenant, "users.create", args, as_=org.as_[creator])
    if allowed:
        assert got.role == new_role
    else:
        assert isinstance(got, PermissionDenied), got
        assert await snapshot(db, org.main.account) == before


async def test_developer_sees_and_writes_every_account(db: Database, org: Org) -> None:
    dev, main, stranger = org.as_[Role.DEVELOPER], org.main, org.stranger
    assert dev.sees_all_accounts and dev.account_id not in (main.account, stranger.account)
    for side in (main, org.other, stranger):
        assert (await call(main.tenant, "sites.get", as_=dev, id=side.site)).id == side.site
        assert (await call(main.tenant, "keywords.get", as_=dev, id=side.one("Keyword"))).site_id == side.site
        page = await call(main.tenant, "keywords.list", as_=dev, search=side.tag)
        assert page.count == len(side.ids["Keyword"])
    sites = text_of(await call(main.tenant, "sites.list", as_=dev, search=stranger.tag))
    assert stranger.tag in sites
    kw = await call(main.tenant, "keywords.create", as_=dev, **ARGS["keywords.create"](stranger))
    imported = await call(
        main.tenant, "keywords.import_csv", as_=dev, **ARGS["keywords.import_csv"](stranger)
    )
    assert imported.imported == 1
    async with db.session(TenantContext.system()) as s:
        assert await s.scalar(select(Keyword.account_id).where(Keyword.id == kw.id)) == stranger.account
        placed = select(Keyword.account_id).where(
            Keyword.site_id == stranger.site, Keyword.keyword == "imported"
        )
        assert await s.scalar(placed) == stranger.account
    assert (await call(main.tenant, "accounts.me", as_=dev)).account_id == dev.account_id


async def test_admin_cannot_grant_or_list_outside_its_account(db: Database, org: Org) -> None:
    admin, stranger = org.as_[Role.ADMIN], org.stranger
    users = text_of(await call(org.main.tenant, "users.list", as_=admin, page_size=500))
    assert stranger.tag not in users and org.main.tag in users
    for args in ({"user_id": stranger.one("User"), "site_id": org.main.site},
                 {"user_id": org.main.one("User"), "site_id": stranger.site}):  # fmt: skip
        got = await attempt(org.main.tenant, "site_access.grant", args, as_=admin)
        assert isinstance(got, NotFound), got


async def test_developer_site_limit_counts_only_their_own_account(db: Database, org: Org) -> None:
    factory = TenantFactory(db)
    home = await factory.create(plan="starter")  # 3 sites; the database holds many more
    dev = await developer(db, home.account_id)
    site = await call(home, "sites.create", as_=dev, name=f"dev site {uuid.uuid4().hex[:8]}")
    assert site.id


async def test_plan_limits_count_the_whole_account_for_editors(db: Database) -> None:
    t = await TenantFactory(db).create(plan="starter")  # max_clusters = 500, max_users = 3
    async with db.transaction(TenantContext.system()) as s:
        hidden = Site(account_id=t.account_id, name="not granted", slug=f"hidden-{t.account_id}")
        s.add(hidden)
        await s.flush()
        sector = Sector(site_id=hidden.id, name="hidden", slug="hidden")
        s.add(sector)
        await s.flush()
        rows = [{"site_id": hidden.id, "sector_id": sector.id, "name": f"c{i}"} for i in range(500)]
        await s.execute(insert(Cluster), rows)
    editor = await t.user(Role.EDITOR, (t.site_id,))
    async with db.session(editor) as s:
        with pytest.raises(PlanLimitExceeded):
            await billing.ensure_within_plan(s, "clusters", 1)
