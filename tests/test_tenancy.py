"""Tenant isolation in the storage layer, one known pitfall per test.

Every test opens real sessions for two accounts (A, B) and tries one way a query or a write could
cross between them: identity maps, ``Session.get``, bulk UPDATE/DELETE/INSERT, relationship and
eager loads, subqueries, CTEs, unions, raw SQL, objects carried between sessions, references to
another tenant's rows, role limits (viewers, editors) and the seed's sector rules.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, exists, func, insert, literal, select, text, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload, selectinload

from storage.db import Database
from storage.exceptions import NotFound, PermissionDenied, TenancyViolation, ValidationFailed
from storage.models import (
    MAX_ACTIVE_SECTORS_PER_SITE,
    Account,
    AccountScoped,
    AIPrompt,
    ApiKey,
    Cluster,
    ContentIdea,
    Industry,
    Keyword,
    Plan,
    Role,
    Sector,
    Site,
    SiteUserAccess,
    User,
    cluster_keywords,
)
from storage.tenancy import TENANT_KEY, TenantContext, TenantSession, tenant_of
from tests.factories import Tenant, TenantFactory
from tests.tenancy_support import call, snapshot
from tools.accounts import authenticate_api_key, hash_api_key, tenant_for_user_id

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Pair:
    a: Tenant
    b: Tenant
    a_keywords: list[int]
    b_keywords: list[int]
    a_cluster: int
    b_cluster: int


async def make_pair(tenants: TenantFactory) -> Pair:
    a, b = await tenants.create(), await tenants.create()
    a_keywords = await a.keywords("alpha one", "alpha two", volume=10)
    b_keywords = await b.keywords("bravo one", volume=20)
    a_cluster = await call(
        a, "clusters.create", site_id=a.site_id, sector_id=a.sector_id, name="alpha", keyword_ids=a_keywords
    )
    b_cluster = await call(
        b, "clusters.create", site_id=b.site_id, sector_id=b.sector_id, name="bravo", keyword_ids=b_keywords
    )
    return Pair(a, b, a_keywords, b_keywords, a_cluster.id, b_cluster.id)


@pytest.fixture(scope="module")
async def pair(db: Database) -> Pair:
    """Shared by the tests that change nothing (or only try to): refusals, reads, rollbacks."""
    return await make_pair(TenantFactory(db))


@pytest.fixture
async def fresh(tenants: TenantFactory) -> Pair:
    """For the tests that write: a pair of their own."""
    return await make_pair(tenants)


@pytest.fixture(scope="module")
async def b_editor(db: Database, pair: Pair) -> TenantContext:
    return await pair.b.user(Role.EDITOR, (pair.b.site_id,))


def keyword(site: Tenant, word: str, **fields: Any) -> Keyword:
    return Keyword(site_id=site.site_id, sector_id=site.sector_id, keyword=word, **fields)


async def user_ctx(db: Database, account_id: int, role: Role) -> TenantContext:
    """A user of any role (developer too), created the way only the system can."""
    async with db.transaction(TenantContext.system()) as s:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        user = User(account_id=account_id, email=f"{name}@example.com", username=name, role=role)
        s.add(user)
        await s.flush()
        user_id = user.id
    return await tenant_for_user_id(db, user_id)


# --- one session, one tenant ---------------------------------------------------------------------


async def test_get_of_another_tenants_id_returns_none(db: Database, pair: Pair) -> None:
    a = pair.a
    async with db.session(pair.b.owner) as s:
        for model, ident in [
            (Keyword, pair.a_keywords[0]),
            (Cluster, pair.a_cluster),
            (Site, a.site_id),
            (Sector, a.sector_id),
            (Account, a.account_id),
            (User, a.owner.user_id),
        ]:
            assert await s.get(model, ident) is None, model
        assert (await s.get(Keyword, pair.b_keywords[0])).keyword == "bravo one"
        assert (await s.get(Account, pair.b.account_id)) is not None


async def test_tenant_context_is_frozen_and_each_session_has_its_own(db: Database, pair: Pair) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.b.owner.account_id = pair.a.account_id  # type: ignore[misc]
    async with db.session(pair.a.owner) as sa, db.session(pair.b.owner) as sb:
        assert tenant_of(sa.sync_session) == pair.a.owner
        assert tenant_of(sb.sync_session) == pair.b.owner
        assert sa.sync_session.info is not sb.sync_session.info


async def test_two_sessions_never_share_identity_maps(db: Database, pair: Pair) -> None:
    # Each session commits before the other runs: on SQLite every transaction takes the write lock.
    async with db.session(pair.a.owner) as sa, db.session(pair.b.owner) as sb:
        a_kw = await sa.get(Keyword, pair.a_keywords[0])
        assert a_kw is not None
        await sa.commit()  # a_kw stays in A's identity map (no expiry on commit)
        b_rows = [
            *(await sb.scalars(select(Keyword).options(selectinload(Keyword.clusters)))).all(),
            *(await sb.scalars(select(Site))).all(),
        ]  # the identity map holds objects weakly: keep them alive
        assert await sb.get(Keyword, pair.a_keywords[0]) is None  # A's session holds it; B's cannot
        await sb.commit()
        held = [o for o in sb.sync_session.identity_map.values() if isinstance(o, AccountScoped)]
        assert len(held) >= len(b_rows) and {o.account_id for o in held} == {pair.b.account_id}
        assert a_kw in sa.sync_session.identity_map.values()
        assert not set(sa.sync_session.identity_map.keys()) & set(sb.sync_session.identity_map.keys())
        with pytest.raises(InvalidRequestError, match="already attached"):
            sb.add(a_kw)


async def test_object_from_another_tenants_session_cannot_be_added_changed_or_deleted(
    db: Database, pair: Pair
) -> None:
    before = await snapshot(db, pair.a.account_id)
    async with db.session(pair.a.owner) as sa:
        a_kw = await sa.get(Keyword, pair.a_keywords[0])
        a_site = await sa.get(Site, pair.a.site_id)
    a_kw.volume = 999
    async with db.session(pair.b.owner) as sb:
        with pytest.raises(TenancyViolation, match="another tenant"):
            sb.add(a_kw)
        with pytest.raises(TenancyViolation, match="another tenant"):
            await sb.delete(a_site)
        with pytest.raises(NotFound):  # merge looks A's row up in B's scope, finds nothing, inserts
            await sb.merge(a_kw)
            await sb.flush()
    assert await snapshot(db, pair.a.account_id) == before


async def test_session_without_tenant_refuses_everything(db: Database, pair: Pair) -> None:
    async with AsyncSession(db.engine, sync_session_class=TenantSession) as s:
        with pytest.raises(TenancyViolation, match="no tenant"):
            await s.execute(select(Keyword))
        with pytest.raises(TenancyViolation, match="no tenant"):
            await s.get(Keyword, pair.a_keywords[0])
        s.add(keyword(pair.a, "no tenant"))
        with pytest.raises(TenancyViolation, match="no tenant"):
            await s.flush()


# --- bulk UPDATE / DELETE -----------------------------------------------------------------------


async def test_bulk_update_without_where_touches_only_own_rows(db: Database, fresh: Pair) -> None:
    before = await snapshot(db, fresh.a.account_id)
    async with db.transaction(fresh.b.owner) as s:
        result = await s.execute(update(Keyword).values(volume=1))
        assert result.rowcount == len(fresh.b_keywords)
        result = await s.execute(update(Cluster).values(description="mine"))
        assert result.rowcount == 1
    assert await snapshot(db, fresh.a.account_id) == before


async def test_bulk_delete_without_where_touches_only_own_rows(db: Database, fresh: Pair) -> None:
    before = await snapshot(db, fresh.a.account_id)
    async with db.transaction(fresh.b.owner) as s:
        assert (await s.execute(delete(Keyword))).rowcount == len(fresh.b_keywords)
        assert (await s.execute(delete(Cluster))).rowcount == 1
    assert await snapshot(db, fresh.a.account_id) == before


async def test_bulk_update_aimed_at_another_tenants_ids_touches_nothing(db: Database, pair: Pair) -> None:
    before = await snapshot(db, pair.a.account_id)
    async with db.transaction(pair.b.owner) as s:
        stmt = update(Keyword).where(Keyword.id.in_(pair.a_keywords)).values(status="archived")
        assert (await s.execute(stmt)).rowcount == 0
        assert (await s.execute(delete(Keyword).where(Keyword.id.in_(pair.a_keywords)))).rowcount == 0
    assert await snapshot(db, pair.a.account_id) == before


@pytest.mark.parametrize("column", ["account_id", "site_id", "sector_id"])
@pytest.mark.parametrize("how", ["values(name=)", "values({attr: })", "execute params", "ordered_values"])
async def test_bulk_update_cannot_move_rows(db: Database, pair: Pair, column: str, how: str) -> None:
    target = {"account_id": pair.a.account_id, "site_id": pair.a.site_id, "sector_id": pair.a.sector_id}
    value = target[column]
    base = update(Keyword).where(Keyword.id == pair.b_keywords[0])
    statements: dict[str, tuple[Any, Any]] = {
        "values(name=)": (base.values(**{column: value}), None),
        "values({attr: })": (base.values({getattr(Keyword, column): value}), None),
        "execute params": (base, {column: value}),
        "ordered_values": (base.ordered_values((getattr(Keyword, column), value)), None),
    }
    stmt, params = statements[how]
    async with db.session(pair.b.owner) as s:
        with pytest.raises(TenancyViolation, match="cannot change account, site or sector"):
            await s.execute(stmt, params)


async def test_bulk_update_by_primary_key_is_refused(db: Database, pair: Pair) -> None:
    async with db.session(pair.b.owner) as s:
        for ident in (pair.a_keywords[0], pair.b_keywords[0]):
            with pytest.raises(TenancyViolation, match="by primary key"):
                await s.execute(update(Keyword), [{"id": ident, "volume": 5}])


async def test_tenants_cannot_bulk_write_the_shared_catalogue(db: Database, pair: Pair) -> None:
    async with db.session(pair.b.owner) as s:
        with pytest.raises(PermissionDenied, match="catalogue"):
            await s.execute(update(Plan).values(price_usd=0))
        with pytest.raises(PermissionDenied, match="catalogue"):
            await s.execute(delete(Industry))
        with pytest.raises(PermissionDenied, match="catalogue"):
            await s.execute(insert(Industry), [{"name": "x", "slug": "x"}])
        with pytest.raises(PermissionDenied, match="accounts"):
            await s.execute(insert(Account), [{"name": "x", "slug": f"x-{pair.b.account_id}"}])
        s.add(Industry(name="x", slug=f"x-{pair.b.account_id}"))
        with pytest.raises(PermissionDenied, match="catalogue"):
            await s.flush()


# --- relationship and eager loads ---------------------------------------------------------------


async def _link_across_tenants(db: Database, pair: Pair) -> None:
    """Corrupt data only the system could write: B's cluster holds A's keyword and vice versa."""
    async with db.transaction(TenantContext.system()) as s:
        b_cluster = await s.get(Cluster, pair.b_cluster)
        a_cluster = await s.get(Cluster, pair.a_cluster)
        await s.refresh(b_cluster, ["keywords"])
        await s.refresh(a_cluster, ["keywords"])
        b_cluster.keywords.append(await s.get(Keyword, pair.a_keywords[0]))
        a_cluster.keywords.append(await s.get(Keyword, pair.b_keywords[0]))


async def test_relationship_loads_never_cross_tenants_even_over_a_cross_tenant_link(
    db: Database, fresh: Pair
) -> None:
    await _link_across_tenants(db, fresh)
    async with db.session(TenantContext.system()) as s:  # the link really is in the database
        links = await s.execute(
            select(cluster_keywords).where(cluster_keywords.c.cluster_id == fresh.b_cluster)
        )
        assert fresh.a_keywords[0] in {row.keyword_id for row in links}
    for own, other in ((fresh.b, fresh.a), (fresh.a, fresh.b)):
        own_kw = fresh.b_keywords if own is fresh.b else fresh.a_keywords
        own_cluster = fresh.b_cluster if own is fresh.b else fresh.a_cluster
        async with db.session(own.owner) as s:
            cluster = await s.get(Cluster, own_cluster)
            await s.refresh(cluster, ["keywords"])
            assert {k.account_id for k in cluster.keywords} == {own.account_id}
            assert sorted(k.id for k in cluster.keywords) == sorted(own_kw)

            for option in (selectinload(Cluster.keywords), joinedload(Cluster.keywords)):
                rows = (
                    (
                        await s.scalars(
                            select(Cluster).options(option).execution_options(populate_existing=True)
                        )
                    )
                    .unique()
                    .all()
                )
                assert [c.id for c in rows] == [own_cluster]
                assert {k.account_id for c in rows for k in c.keywords} == {own.account_id}

            for option in (selectinload(Keyword.clusters), joinedload(Keyword.clusters)):
                kws = (
                    (
                        await s.scalars(
                            select(Keyword).options(option).execution_options(populate_existing=True)
                        )
                    )
                    .unique()
                    .all()
                )
                assert {c.account_id for k in kws for c in k.clusters} == {own.account_id}
                assert {k.account_id for k in kws} == {own.account_id}

            via_join = await s.scalars(select(Keyword.id).join(Keyword.clusters))
            assert set(via_join) <= set(own_kw)
            other_cluster = fresh.a_cluster if own is fresh.b else fresh.b_cluster
            assert (
                await s.scalars(select(Keyword).where(Keyword.clusters.any(Cluster.id == other_cluster)))
            ).all() == []
        assert other.account_id != own.account_id


async def test_cluster_metrics_ignore_cross_tenant_links(db: Database, fresh: Pair) -> None:
    await _link_across_tenants(db, fresh)
    out = await call(fresh.b, "clusters.get", id=fresh.b_cluster)
    assert (out.keywords_count, out.volume) == (len(fresh.b_keywords), 20 * len(fresh.b_keywords))


# --- subqueries, CTEs, EXISTS, aliases, unions --------------------------------------------------

Statement = Callable[[Pair], Any]


def _cte(p: Pair) -> Any:
    words = select(Keyword.id, Keyword.keyword).cte("words")
    return select(words.c.keyword)


def _recursive_cte(p: Pair) -> Any:
    tree = select(Keyword.id, Keyword.keyword).where(Keyword.volume.is_not(None)).cte("tree", recursive=True)
    tree = tree.union_all(select(Keyword.id, Keyword.keyword).where(Keyword.id == tree.c.id, literal(False)))
    return select(tree.c.keyword)


def _self_join(p: Pair) -> Any:
    other = aliased(Keyword)
    return select(other.keyword).join(Keyword, Keyword.volume <= other.volume)


SELECTS: dict[str, Statement] = {
    "in_(select)": lambda p: select(Keyword.keyword).where(Keyword.id.in_(select(Keyword.id))),
    "outer in_ inner filter": lambda p: select(Keyword.keyword).where(
        Keyword.id.in_(select(Keyword.id).where(Keyword.id.in_(p.a_keywords + p.b_keywords)))
    ),
    "scalar subquery column": lambda p: select(select(func.max(Keyword.keyword)).scalar_subquery()),
    "cte": _cte,
    "recursive cte": _recursive_cte,
    "exists": lambda p: select(Keyword.keyword).where(exists().where(Keyword.volume > 0)),
    "exists over another tenant's id": lambda p: select(Site.name).where(
        exists().where(Keyword.id == p.a_keywords[0])
    ),
    "aliased": lambda p: select(aliased(Keyword).keyword),
    "aliased self-join": _self_join,
    "aliased subquery entity": lambda p: select(
        aliased(Keyword, select(Keyword).where(Keyword.volume > 0).subquery()).keyword
    ),
    "union": lambda p: union_all(select(Keyword.keyword), select(Cluster.name)),
    "union subquery": lambda p: select(
        union_all(select(Keyword.keyword.label("word")), select(Cluster.name)).subquery().c.word
    ),
    "join to site": lambda p: select(Keyword.keyword).join(Site, Site.id == Keyword.site_id),
    "count": lambda p: select(func.count()).select_from(Keyword),
    "count column": lambda p: select(func.count(Keyword.id)),
}
EXPECTED: dict[str, Callable[[Pair], set[Any]]] = {
    "count": lambda p: {len(p.b_keywords)},
    "count column": lambda p: {len(p.b_keywords)},
    "exists over another tenant's id": lambda p: set(),
    "scalar subquery column": lambda p: {"bravo one"},
    "union": lambda p: {"bravo one", "bravo"},
    "union subquery": lambda p: {"bravo one", "bravo"},
}


@pytest.mark.parametrize("case", SELECTS)
async def test_subqueries_ctes_exists_aliases_and_unions_are_filtered(
    db: Database, pair: Pair, case: str
) -> None:
    async with db.session(pair.b.owner) as s:
        got = set((await s.execute(SELECTS[case](pair))).scalars().all())
    assert got == EXPECTED.get(case, lambda p: {"bravo one"})(pair)


# --- INSERT through the unit of work and in bulk ------------------------------------------------


async def test_insert_takes_the_account_from_the_site(db: Database, fresh: Pair) -> None:
    async with db.transaction(fresh.b.owner) as s:
        kw = keyword(fresh.b, "fresh")
        s.add(kw)
        await s.flush()
        assert kw.account_id == fresh.b.account_id
        prompt = AIPrompt(prompt_type="clustering", prompt_value="x")
        s.add(prompt)
        await s.flush()
        assert prompt.account_id == fresh.b.account_id


@pytest.mark.parametrize(
    ("site", "sector", "missing"),
    [("a", "a", "Site"), ("a", "b", "Site"), ("b", "a", "Sector")],
)
async def test_insert_into_another_tenants_site_or_sector_is_not_found(
    db: Database, pair: Pair, site: str, sector: str, missing: str
) -> None:
    sides = {"a": pair.a, "b": pair.b}
    row = {"site_id": sides[site].site_id, "sector_id": sides[sector].sector_id, "keyword": "intruder"}
    before = await snapshot(db, pair.a.account_id)
    async with db.session(pair.b.owner) as s:
        s.add(Keyword(**row))
        with pytest.raises(NotFound, match=missing):
            await s.flush()
    async with db.session(pair.b.owner) as s:
        with pytest.raises(NotFound, match=missing):
            await s.execute(insert(Keyword), [row])
    assert await snapshot(db, pair.a.account_id) == before


async def test_explicit_account_id_of_another_tenant_is_refused(db: Database, pair: Pair) -> None:
    async with db.session(pair.b.owner) as s:
        s.add(keyword(pair.b, "smuggled", account_id=pair.a.account_id))
        with pytest.raises(PermissionDenied, match="another account"):
            await s.flush()
    async with db.session(pair.b.owner) as s:
        s.add(AIPrompt(account_id=pair.a.account_id, prompt_type="clustering", prompt_value="x"))
        with pytest.raises(PermissionDenied, match="another account"):
            await s.flush()
    async with db.session(pair.b.owner) as s:
        row = {"site_id": pair.b.site_id, "sector_id": pair.b.sector_id, "keyword": "x"}
        with pytest.raises(PermissionDenied, match="another account"):
            await s.execute(insert(Keyword), [{**row, "account_id": pair.a.account_id}])
        with pytest.raises(PermissionDenied, match="another account"):
            await s.execute(
                insert(AIPrompt), [{"account_id": pair.a.account_id, "prompt_type": "t", "prompt_value": "x"}]
            )


async def test_orm_bulk_insert_takes_the_account_from_the_site(db: Database, fresh: Pair) -> None:
    rows = [
        {"site_id": fresh.b.site_id, "sector_id": fresh.b.sector_id, "keyword": f"bulk {i}"} for i in range(3)
    ]
    async with db.transaction(fresh.b.owner) as s:
        await s.execute(insert(Keyword), rows)
    async with db.session(TenantContext.system()) as s:
        accounts = await s.scalars(
            select(Keyword.account_id).where(
                Keyword.keyword.startswith("bulk "), Keyword.site_id == fresh.b.site_id
            )
        )
        assert list(accounts) == [fresh.b.account_id] * 3


async def test_bulk_insert_forms_the_hook_cannot_check_are_refused(db: Database, pair: Pair) -> None:
    row = {"site_id": pair.b.site_id, "sector_id": pair.b.sector_id, "keyword": "x"}
    dialect_insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
    upsert = dialect_insert(Keyword).on_conflict_do_update(index_elements=["id"], set_={"volume": 0})
    async with db.session(pair.b.owner) as s:
        with pytest.raises(TenancyViolation, match="as parameters"):
            await s.execute(insert(Keyword).values(**row))
        with pytest.raises(TenancyViolation, match="as parameters"):
            await s.execute(insert(Keyword).values([row, {**row, "keyword": "y"}]))
        with pytest.raises(TenancyViolation, match="as parameters"):
            await s.execute(
                insert(Keyword).from_select(
                    ["site_id", "sector_id", "keyword"],
                    select(Keyword.site_id, Keyword.sector_id, Keyword.keyword + " copy"),
                )
            )
        # A clash on the id would update another tenant's row.
        with pytest.raises(TenancyViolation, match="ON CONFLICT DO UPDATE"):
            await s.execute(upsert, [{**row, "id": pair.a_keywords[0]}])


async def test_rows_cannot_point_at_another_tenants_rows(db: Database, pair: Pair) -> None:
    """Besides site and sector, every reference to a tenant row must be one the writer can see."""
    token = "igny8_forged-key"
    before = await snapshot(db, pair.a.account_id)
    attempts: list[tuple[Any, str]] = [
        # An API key for A's owner, stored in B's account, would authenticate as A.
        (ApiKey(user_id=pair.a.owner.user_id, prefix="igny8_", key_hash=hash_api_key(token)), "User"),
        (SiteUserAccess(user_id=pair.a.owner.user_id, site_id=pair.b.site_id), "User"),
        (
            ContentIdea(
                site_id=pair.b.site_id,
                sector_id=pair.b.sector_id,
                idea_title="x",
                keyword_cluster_id=pair.a_cluster,
            ),
            "Cluster",
        ),
    ]
    for obj, missing in attempts:
        async with db.session(pair.b.owner) as s:
            s.add(obj)
            with pytest.raises(NotFound, match=missing):
                await s.flush()
    async with db.session(pair.b.owner) as s:
        idea = {"site_id": pair.b.site_id, "sector_id": pair.b.sector_id, "idea_title": "x"}
        with pytest.raises(NotFound, match="Cluster"):
            await s.execute(insert(ContentIdea), [{**idea, "keyword_cluster_id": pair.a_cluster}])
    async with db.session(pair.b.owner) as s:  # changing a reference is checked like setting one
        b_idea = ContentIdea(site_id=pair.b.site_id, sector_id=pair.b.sector_id, idea_title="mine")
        s.add(b_idea)
        await s.flush()
        b_idea.keyword_cluster_id = pair.a_cluster
        with pytest.raises(NotFound, match="Cluster"):
            await s.flush()
    with pytest.raises(Exception, match="not valid"):
        await authenticate_api_key(db, token)
    assert await snapshot(db, pair.a.account_id) == before


# --- sectors ------------------------------------------------------------------------------------


async def _add_sectors(t: Tenant, count: int, site_id: int | None = None) -> list[int]:
    return [
        (await call(t, "sectors.create", site_id=site_id or t.site_id, name=f"extra {i}")).id
        for i in range(count)
    ]


async def test_sector_must_belong_to_the_site(db: Database, fresh: Pair) -> None:
    other_site = (await call(fresh.b, "sites.create", name="second")).id
    other_sector = (await _add_sectors(fresh.b, 1, other_site))[0]
    async with db.session(fresh.b.owner) as s:
        s.add(Keyword(site_id=fresh.b.site_id, sector_id=other_sector, keyword="misplaced"))
        with pytest.raises(ValidationFailed) as info:
            await s.flush()
    assert [e.field for e in info.value.errors] == ["sector_id"]
    async with db.session(fresh.b.owner) as s:
        with pytest.raises(ValidationFailed) as info:
            await s.execute(
                insert(Keyword),
                [{"site_id": fresh.b.site_id, "sector_id": other_sector, "keyword": "misplaced"}],
            )
    assert [e.field for e in info.value.errors] == ["sector_id"]


async def test_sixth_active_sector_is_refused(db: Database, fresh: Pair) -> None:
    t = fresh.b
    await _add_sectors(t, MAX_ACTIVE_SECTORS_PER_SITE - 1)
    with pytest.raises(ValidationFailed) as info:
        await call(t, "sectors.create", site_id=t.site_id, name="sixth")
    assert [e.field for e in info.value.errors] == ["is_active"]
    async with db.session(t.owner) as s:  # the same rule below the action
        s.add(Sector(site_id=t.site_id, name="sixth", slug="sixth"))
        with pytest.raises(ValidationFailed, match="at most 5 active"):
            await s.flush()
    async with db.session(t.owner) as s:
        with pytest.raises(ValidationFailed, match="at most 5 active"):
            await s.execute(insert(Sector), [{"site_id": t.site_id, "name": "sixth", "slug": "sixth"}])


async def test_deactivated_sectors_do_not_count_but_reactivating_a_sixth_is_refused(
    db: Database, fresh: Pair
) -> None:
    t = fresh.b
    extra = await _add_sectors(t, MAX_ACTIVE_SECTORS_PER_SITE - 1)
    await call(t, "sectors.update", id=extra[0], is_active=False)
    await call(t, "sectors.create", site_id=t.site_id, name="fits again")
    with pytest.raises(ValidationFailed) as info:
        await call(t, "sectors.update", id=extra[0], is_active=True)
    assert [e.field for e in info.value.errors] == ["is_active"]
    async with db.session(t.owner) as s:  # a bulk UPDATE would skip the count
        with pytest.raises(ValidationFailed) as info:
            await s.execute(update(Sector).where(Sector.id == extra[0]).values(is_active=True))
    assert [e.field for e in info.value.errors] == ["is_active"]
    inactive = await call(t, "sectors.create", site_id=t.site_id, name="parked", is_active=False)
    assert inactive.is_active is False


async def test_moving_an_active_sector_onto_a_full_site_is_refused(db: Database, fresh: Pair) -> None:
    t = fresh.b
    await _add_sectors(t, MAX_ACTIVE_SECTORS_PER_SITE - 1)
    other_site = (await call(t, "sites.create", name="second")).id
    mover = (await _add_sectors(t, 1, other_site))[0]
    async with db.session(t.owner) as s:
        sector = await s.get(Sector, mover)
        sector.site_id = t.site_id
        with pytest.raises(ValidationFailed, match="at most 5 active"):
            await s.flush()


# --- raw SQL and Core ---------------------------------------------------------------------------

RAW: dict[str, Callable[[Pair], Any]] = {
    "text select": lambda p: text("SELECT * FROM igny8_keywords"),
    "text delete": lambda p: text("DELETE FROM igny8_keywords"),
    "core select": lambda p: select(Keyword.__table__),
    "core update": lambda p: Keyword.__table__.update().values(volume=1),
    "core delete": lambda p: Keyword.__table__.delete(),
    "core insert": lambda p: Keyword.__table__.insert().values(
        site_id=p.a.site_id, sector_id=p.a.sector_id, account_id=p.a.account_id, keyword="x"
    ),
    "core link table": lambda p: select(cluster_keywords),
    "from_statement(text)": lambda p: select(Keyword).from_statement(text("SELECT * FROM igny8_keywords")),
    "from_statement(core)": lambda p: select(Keyword).from_statement(select(Keyword.__table__)),
    "text inside ORM select": lambda p: select(Keyword).where(text("1 = 1")),
    "raw column in ORM select": lambda p: select(Site.id, Keyword.__table__.c.keyword),
    "raw column in a function": lambda p: select(Site.id, func.lower(Keyword.__table__.c.keyword)),
    "raw table in select_from": lambda p: select(func.count(Site.id)).select_from(Keyword.__table__),
    "raw table in join": lambda p: select(Site.id).join(Keyword.__table__, literal(True)),
    "raw alias": lambda p: select(Site.id, Keyword.__table__.alias().c.keyword),
    "raw table in subquery": lambda p: select(Site.id).where(
        Site.id.in_(select(Keyword.__table__.c.site_id))
    ),
}


@pytest.mark.parametrize("case", RAW)
async def test_raw_sql_and_core_statements_are_refused(
    db: Database, pair: Pair, b_editor: TenantContext, case: str
) -> None:
    for ctx in (pair.b.owner, b_editor):
        async with db.session(ctx) as s:
            with pytest.raises(TenancyViolation):
                await s.execute(RAW[case](pair))


async def test_the_system_may_run_raw_sql(db: Database, pair: Pair) -> None:
    async with db.session(TenantContext.system()) as s:
        assert (await s.execute(text("SELECT 1"))).scalar() == 1


# --- read-only sessions ---------------------------------------------------------------------------


async def test_read_only_sessions_refuse_every_write_even_for_owners(db: Database, pair: Pair) -> None:
    owner = pair.b.owner
    before = await snapshot(db, pair.b.account_id)
    async with db.session(owner, read_only=True) as s:
        with pytest.raises(TenancyViolation, match="read-only"):
            await s.execute(update(Keyword).values(volume=1))
    async with db.session(owner, read_only=True) as s:
        s.add(keyword(pair.b, "written anyway"))
        with pytest.raises(TenancyViolation, match="read-only"):
            await s.flush()
    async with db.transaction(owner, read_only=True) as s:
        assert len((await s.scalars(select(Keyword))).all()) == len(pair.b_keywords)
    assert await snapshot(db, pair.b.account_id) == before


async def test_a_read_only_transaction_does_not_wait_for_a_writer(db: Database, pair: Pair) -> None:
    """On SQLite every writing transaction holds the one write lock from its start; readers must not
    queue behind it (they would wait up to the 30 s busy timeout)."""
    async with db.transaction(pair.a.owner) as writer:
        await writer.execute(update(Keyword).where(Keyword.id == pair.a_keywords[0]).values(volume=11))

        async def read() -> int:
            async with db.transaction(pair.a.owner, read_only=True) as reader:
                return len((await reader.scalars(select(Keyword))).all())

        assert await asyncio.wait_for(read(), timeout=10) == len(pair.a_keywords)
        await writer.execute(update(Keyword).where(Keyword.id == pair.a_keywords[0]).values(volume=10))


# --- viewers and editors ------------------------------------------------------------------------


async def test_viewer_sessions_cannot_flush_or_bulk_write(db: Database, pair: Pair) -> None:
    viewer = await pair.b.user(Role.VIEWER, (pair.b.site_id,))
    writes: list[Callable[[AsyncSession], Any]] = [
        lambda s: s.execute(update(Keyword).values(volume=1)),
        lambda s: s.execute(delete(Keyword)),
        lambda s: s.execute(
            insert(Keyword), [{"site_id": pair.b.site_id, "sector_id": pair.b.sector_id, "keyword": "v"}]
        ),
    ]
    before = await snapshot(db, pair.b.account_id)
    for write in writes:
        async with db.session(viewer) as s:
            with pytest.raises(PermissionDenied, match="read-only"):
                await write(s)
    async with db.session(viewer) as s:
        s.add(keyword(pair.b, "viewer"))
        with pytest.raises(PermissionDenied, match="read-only"):
            await s.flush()
    async with db.session(viewer) as s:
        kw = await s.get(Keyword, pair.b_keywords[0])
        kw.volume = 1
        with pytest.raises(PermissionDenied, match="read-only"):
            await s.flush()
    async with db.session(viewer) as s:
        await s.delete(await s.get(Keyword, pair.b_keywords[0]))
        with pytest.raises(PermissionDenied, match="read-only"):
            await s.flush()
    async with db.session(viewer) as s:  # reading is fine
        assert len((await s.scalars(select(Keyword))).all()) == len(pair.b_keywords)
    assert await snapshot(db, pair.b.account_id) == before


async def test_editors_see_and_write_only_granted_sites(db: Database, fresh: Pair) -> None:
    t = fresh.b
    other_site = (await call(t, "sites.create", name="not granted")).id
    other_sector = (await _add_sectors(t, 1, other_site))[0]
    hidden = (
        await call(t, "keywords.create", site_id=other_site, sector_id=other_sector, keyword="hidden")
    ).id
    editor = await t.user(Role.EDITOR, (t.site_id,))
    assert editor.site_ids == frozenset({t.site_id})
    before = await snapshot(db, t.account_id, site_id=other_site)
    async with db.session(editor) as s:
        assert set(await s.scalars(select(Site.id))) == {t.site_id}
        assert set(await s.scalars(select(Sector.site_id))) == {t.site_id}
        assert set(await s.scalars(select(Keyword.id))) == set(fresh.b_keywords)
        assert await s.get(Site, other_site) is None
        assert await s.get(Keyword, hidden) is None
        assert await s.scalar(select(func.count()).select_from(Keyword)) == len(fresh.b_keywords)
        # The account's other rows (users, prompts) are shared; only site-owned rows are narrowed.
        assert t.owner.user_id in set(await s.scalars(select(User.id)))
    async with db.session(editor) as s:
        s.add(Keyword(site_id=other_site, sector_id=other_sector, keyword="sneak"))
        with pytest.raises(NotFound, match="Site"):
            await s.flush()
    async with db.session(editor) as s:
        with pytest.raises(NotFound, match="Site"):
            await s.execute(
                insert(Keyword), [{"site_id": other_site, "sector_id": other_sector, "keyword": "s"}]
            )
    async with db.transaction(editor) as s:
        assert (await s.execute(update(Keyword).values(status="archived"))).rowcount == len(fresh.b_keywords)
    async with db.session(editor) as s:
        assert (await s.execute(delete(Keyword).where(Keyword.id == hidden))).rowcount == 0
    assert await snapshot(db, t.account_id, site_id=other_site) == before


async def test_editor_without_grants_sees_no_site_rows(db: Database, pair: Pair) -> None:
    editor = await pair.b.user(Role.EDITOR)
    async with db.session(editor) as s:
        assert (await s.scalars(select(Site))).all() == []
        assert (await s.scalars(select(Keyword))).all() == []
        assert await s.get(Account, pair.b.account_id) is not None


# --- who sees everything ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["system", "developer"])
async def test_system_context_and_developers_see_every_account(db: Database, pair: Pair, who: str) -> None:
    ctx = TenantContext.system() if who == "system" else await user_ctx(db, pair.a.account_id, Role.DEVELOPER)
    assert ctx.sees_all_accounts
    async with db.session(ctx) as s:
        accounts = set(await s.scalars(select(Account.id)))
        keywords = set(await s.scalars(select(Keyword.id)))
        assert {pair.a.account_id, pair.b.account_id} <= accounts
        assert set(pair.a_keywords + pair.b_keywords) <= keywords
        assert await s.get(Keyword, pair.b_keywords[0]) is not None
        cluster = await s.get(Cluster, pair.b_cluster)
        await s.refresh(cluster, ["keywords"])
        assert sorted(k.id for k in cluster.keywords) == sorted(pair.b_keywords)


async def test_developer_writes_land_in_the_sites_account(db: Database, fresh: Pair) -> None:
    developer = await user_ctx(db, fresh.a.account_id, Role.DEVELOPER)
    async with db.transaction(developer) as s:
        kw = keyword(fresh.b, "placed by a developer")
        s.add(kw)
        await s.flush()
        assert kw.account_id == fresh.b.account_id


@pytest.mark.parametrize("who", ["system", "developer"])
async def test_unscoped_bulk_inserts_still_take_the_account_from_the_site(
    db: Database, fresh: Pair, who: str
) -> None:
    ctx = (
        TenantContext.system() if who == "system" else await user_ctx(db, fresh.a.account_id, Role.DEVELOPER)
    )
    row = {"site_id": fresh.b.site_id, "sector_id": fresh.b.sector_id, "keyword": f"by {who}"}
    async with db.transaction(ctx) as s:
        await s.execute(insert(Keyword), [row])
        assert (
            await s.scalar(select(Keyword.account_id).where(Keyword.keyword == f"by {who}"))
            == fresh.b.account_id
        )
    async with db.session(ctx) as s:
        with pytest.raises(PermissionDenied, match="another account"):
            await s.execute(insert(Keyword), [{**row, "keyword": "x", "account_id": fresh.a.account_id}])
    async with db.session(ctx) as s:
        with pytest.raises(ValidationFailed, match="does not belong"):
            await s.execute(insert(Keyword), [{**row, "keyword": "x", "sector_id": fresh.a.sector_id}])


# --- no raw SQL outside storage -----------------------------------------------------------------

# Files allowed to hold raw SQL, each with the reason. storage/ is where SQL belongs; tests/ may
# poke at the database directly.
RAW_SQL_EXEMPT_DIRS = {"storage", "tests"}
RAW_SQL_EXEMPT_FILES = {
    # A performance baseline, not application code: it times a plain ``COPY … FROM STDIN`` and
    # plain SQLite inserts into its own scratch table to compare the import path against. It
    # runs outside any tenant session, against a database it creates for the benchmark.
    "bench/csv_import.py",
    # The HTTP benchmark's baseline: a bare aiohttp handler reading the same page of keywords with
    # SQLAlchemy Core (``Keyword.__table__``) in its own server process, to compare our whole stack
    # against. Outside any tenant session by design; the app it measures goes through ours.
    "bench/http.py",
}
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "build", "dist", "__pycache__"}
_EXECUTE_METHODS = {
    "execute",
    "executemany",
    "scalar",
    "scalars",
    "stream",
    "stream_scalars",
    "exec_driver_sql",
}
_SQLALCHEMY_RAW_NAMES = {"text", "TextClause", "literal_column"}


def raw_sql_offences(source: str, filename: str = "<src>") -> list[str]:
    """Places in Python source that build or run SQL the tenant filter cannot scope."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [
                f"{where}: imports sqlalchemy {a.name}" for a in node.names if a.name in _SQLALCHEMY_RAW_NAMES
            ]
        elif isinstance(node, ast.Attribute) and node.attr == "__table__":
            found.append(f"{where}: uses Model.__table__ (Core, unscoped)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, args = node.func.attr, node.args
            if name == "exec_driver_sql":
                found.append(f"{where}: exec_driver_sql")
            elif name in _EXECUTE_METHODS and args and isinstance(args[0], ast.Constant | ast.JoinedStr):
                found.append(f"{where}: .{name}() of a SQL string")
            elif (
                name in _SQLALCHEMY_RAW_NAMES
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"sa", "sqlalchemy", "sql", "expression"}
            ):
                found.append(f"{where}: {node.func.value.id}.{name}()")
            elif name == "connection" and not args:
                found.append(f"{where}: .connection() (a raw connection skips the tenant hooks)")
        elif (isinstance(node, ast.Name) and node.id == "TENANT_KEY") or (
            isinstance(node, ast.Constant) and node.value == TENANT_KEY
        ):
            found.append(f"{where}: touches the session's tenant (sessions are bound once, by storage)")
    return found


def test_raw_sql_scanner_finds_each_pattern() -> None:
    source = """
from sqlalchemy import select, text
from sqlalchemy.sql import text as t2
import sqlalchemy as sa
async def f(session, conn):
    await session.execute(text("SELECT 1"))
    await session.execute("DELETE FROM igny8_keywords")
    await session.scalar(f"SELECT {1}")
    await conn.exec_driver_sql("SELECT 1")
    await session.execute(Keyword.__table__.delete())
    sa.text("x")
    raw = await session.connection()
"""
    offences = raw_sql_offences(source)
    assert len(offences) == 8, offences
    assert raw_sql_offences("from sqlalchemy import select\nsession.execute(select(Keyword))\n") == []


def test_no_raw_sql_outside_storage() -> None:
    offenders: list[str] = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if (
            rel.parts[0] in RAW_SQL_EXEMPT_DIRS
            or set(rel.parts) & _SKIP_DIRS
            or rel.as_posix() in RAW_SQL_EXEMPT_FILES
        ):
            continue
        offenders += raw_sql_offences(path.read_text(encoding="utf-8"), rel.as_posix())
    assert offenders == [], "raw SQL outside storage/ (the tenant filter cannot scope it):\n" + "\n".join(
        offenders
    )


def test_raw_sql_exemptions_still_exist() -> None:
    """An exemption for a file that is gone would silently cover whatever takes its name next."""
    assert [f for f in sorted(RAW_SQL_EXEMPT_FILES) if not (REPO / f).is_file()] == []
