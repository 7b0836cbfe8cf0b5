"""keywords.* actions through the registry, on both backends: CRUD, filters, ordering, bulk."""

from __future__ import annotations

from typing import Any

import pytest

from storage.exceptions import ConfirmationRequired, NotFound, PermissionDenied
from storage.models import Role
from tests.factories import Tenant, TenantFactory
from tests.planner_support import field_error, new_cluster, new_sector, new_site


async def words(t: Tenant, **args: Any) -> list[str]:
    page = await t.run("keywords.list", page_size=500, **args)
    return [k.keyword for k in page.results]


async def count(t: Tenant, **args: Any) -> int:
    return (await t.run("keywords.list", **args)).count


# --- create ------------------------------------------------------------------------------------


async def test_create_normalises_text_and_returns_every_field(tenants: TenantFactory) -> None:
    t = await tenants.create()
    kw = await t.run(
        "keywords.create",
        site_id=t.site_id,
        sector_id=t.sector_id,
        keyword="  Best   RUNNING\tShoes \n",
        volume=1200,
        difficulty=35,
        intent="commercial",
    )
    assert kw.keyword == "best running shoes"
    assert (kw.volume, kw.difficulty, kw.intent, kw.status) == (1200, 35, "commercial", "pending")
    assert (kw.site_id, kw.sector_id, kw.cluster_ids) == (t.site_id, t.sector_id, [])
    assert kw.created_at is not None and kw.updated_at is not None
    assert (await t.run("keywords.get", id=kw.id)).keyword == "best running shoes"


async def test_keyword_is_unique_per_sector_but_not_across_sectors(tenants: TenantFactory) -> None:
    t = await tenants.create()
    await t.keywords("Trail Shoes")
    error = await field_error(t.keywords("  trail   SHOES"), "keyword")
    assert "trail shoes" in error.message
    other_sector = await new_sector(t)
    [other] = await t.keywords("trail shoes", sector_id=other_sector)
    assert (await t.run("keywords.get", id=other)).sector_id == other_sector
    assert await count(t) == 2
    # Another account may of course use the same words.
    u = await tenants.create()
    assert await u.keywords("trail shoes")


async def test_create_refuses_clusters_outside_the_sector(tenants: TenantFactory) -> None:
    t = await tenants.create()
    other_sector = await new_sector(t)
    foreign = await new_cluster(t, "Elsewhere", other_sector)
    await field_error(t.keywords("shoes", cluster_ids=[foreign.id]), "cluster_ids")
    await field_error(t.keywords("shoes", cluster_ids=[999_999_999]), "cluster_ids")
    u = await tenants.create()
    theirs = await new_cluster(u, "Theirs")
    await field_error(t.keywords("shoes", cluster_ids=[theirs.id]), "cluster_ids")
    assert await count(t) == 0
    own = await new_cluster(t, "Own")
    [kid] = await t.keywords("shoes", cluster_ids=[own.id, own.id])
    assert (await t.run("keywords.get", id=kid)).cluster_ids == [own.id]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"keyword": ""}, "keyword"),
        ({"keyword": "   "}, "keyword"),
        ({"keyword": "\x00\x01"}, "keyword"),
        ({"keyword": "x" * 256}, "keyword"),
        ({"keyword": "ok", "volume": -1}, "volume"),
        ({"keyword": "ok", "volume": 2**31}, "volume"),
        ({"keyword": "ok", "difficulty": 101}, "difficulty"),
        ({"keyword": "ok", "difficulty": -1}, "difficulty"),
        ({"keyword": "ok", "intent": "curious"}, "intent"),
        ({"keyword": "ok", "status": "deleted"}, "status"),
        ({"keyword": "ok", "colour": "red"}, "colour"),
        ({"volume": 10}, "keyword"),
    ],
)
async def test_create_rejects_bad_input_naming_the_field(
    tenants: TenantFactory, args: dict[str, Any], field: str
) -> None:
    t = await tenants.create()
    await field_error(t.run("keywords.create", site_id=t.site_id, sector_id=t.sector_id, **args), field)
    assert await count(t) == 0


async def test_create_strips_control_characters(tenants: TenantFactory) -> None:
    t = await tenants.create()
    [kid] = await t.keywords("run\x00ning shoes")
    assert (await t.run("keywords.get", id=kid)).keyword == "running shoes"


async def test_create_checks_site_and_sector_placement(tenants: TenantFactory) -> None:
    t = await tenants.create()
    other_site = await new_site(t)
    await field_error(
        t.run("keywords.create", site_id=other_site, sector_id=t.sector_id, keyword="x"), "sector_id"
    )
    u = await tenants.create()
    with pytest.raises(NotFound):
        await t.run("keywords.create", site_id=u.site_id, sector_id=u.sector_id, keyword="x")
    assert await count(u) == 0


# --- get / update / delete ---------------------------------------------------------------------


async def test_get_hides_missing_and_foreign_keywords(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    [theirs] = await u.keywords("secret")
    for ident in (theirs, 999_999_999):
        with pytest.raises(NotFound):
            await t.run("keywords.get", id=ident)
    with pytest.raises(NotFound):
        await t.run("keywords.update", id=theirs, volume=1)
    with pytest.raises(NotFound):
        await t.run("keywords.delete", id=theirs)
    assert (await u.run("keywords.get", id=theirs)).volume is None


async def test_update_is_partial_and_normalises(tenants: TenantFactory) -> None:
    t = await tenants.create()
    [kid] = await t.keywords("shoes", volume=10, difficulty=20, intent="informational")
    before = await t.run("keywords.get", id=kid)
    out = await t.run("keywords.update", id=kid, volume=50)
    assert (out.keyword, out.volume, out.difficulty, out.intent) == ("shoes", 50, 20, "informational")
    assert out.updated_at >= before.updated_at
    out = await t.run("keywords.update", id=kid, keyword="  Red   SHOES ", status="active")
    assert (out.keyword, out.status, out.volume) == ("red shoes", "active", 50)
    # Renaming to itself in another spelling is not a clash with itself.
    assert (await t.run("keywords.update", id=kid, keyword="RED shoes")).keyword == "red shoes"


async def test_update_clears_only_nullable_fields(tenants: TenantFactory) -> None:
    t = await tenants.create()
    [kid] = await t.keywords("shoes", volume=10, difficulty=20, intent="commercial")
    out = await t.run("keywords.update", id=kid, volume=None, difficulty=None, intent=None)
    assert (out.volume, out.difficulty, out.intent) == (None, None, None)
    await field_error(t.run("keywords.update", id=kid, keyword=None), "keyword")
    await field_error(t.run("keywords.update", id=kid, status=None), "status")
    await field_error(t.run("keywords.update", id=kid, keyword="   "), "keyword")
    await field_error(t.run("keywords.update", id=kid, volume=2**31), "volume")
    await field_error(t.run("keywords.update", id=kid, site_id=t.site_id), "site_id")
    out = await t.run("keywords.get", id=kid)
    assert (out.keyword, out.status) == ("shoes", "pending")


async def test_update_refuses_renaming_into_a_duplicate(tenants: TenantFactory) -> None:
    t = await tenants.create()
    cluster = await new_cluster(t, "C")
    _, second = await t.keywords("red shoes", "blue shoes")
    await field_error(t.run("keywords.update", id=second, keyword="Red Shoes"), "keyword")
    # Also when clusters change in the same call (their lookup must not flush the clash first).
    await field_error(
        t.run("keywords.update", id=second, keyword="red shoes", cluster_ids=[cluster.id]), "keyword"
    )
    assert sorted(await words(t)) == ["blue shoes", "red shoes"]
    assert (await t.run("keywords.get", id=second)).cluster_ids == []


async def test_update_replaces_clusters_within_the_sector(tenants: TenantFactory) -> None:
    t = await tenants.create()
    a = await new_cluster(t, "A")
    b = await new_cluster(t, "B")
    foreign = await new_cluster(t, "F", await new_sector(t))
    [kid] = await t.keywords("shoes", cluster_ids=[a.id])
    assert (await t.run("keywords.update", id=kid, cluster_ids=[b.id, a.id])).cluster_ids == sorted(
        [a.id, b.id]
    )
    assert (await t.run("keywords.update", id=kid, volume=5)).cluster_ids == sorted([a.id, b.id])
    await field_error(t.run("keywords.update", id=kid, cluster_ids=[foreign.id]), "cluster_ids")
    assert (await t.run("keywords.update", id=kid, cluster_ids=[])).cluster_ids == []


async def test_delete_removes_keyword_and_its_cluster_links(tenants: TenantFactory) -> None:
    t = await tenants.create()
    cluster = await new_cluster(t, "C")
    gone, _ = await t.keywords("gone", "kept", cluster_ids=[cluster.id], volume=10)
    out = await t.run("keywords.delete", id=gone)
    assert (out.requested, out.affected, out.not_found) == (1, 1, [])
    with pytest.raises(NotFound):
        await t.run("keywords.get", id=gone)
    with pytest.raises(NotFound):
        await t.run("keywords.delete", id=gone)
    after = await t.run("clusters.get", id=cluster.id)
    assert (after.keywords_count, after.volume) == (1, 10)
    assert await words(t) == ["kept"]


# --- list: filters, search, ordering, pagination -----------------------------------------------


async def _catalogue(t: Tenant) -> dict[str, Any]:
    """A small keyword set covering every filter; returns the ids worth filtering on."""
    cluster = await new_cluster(t, "Running")
    other_sector = await new_sector(t)
    specs = [
        ("running shoes", {"volume": 1000, "difficulty": 60, "intent": "commercial", "status": "active"}),
        ("trail running", {"volume": 300, "difficulty": 30, "intent": "informational"}),
        ("buy running socks", {"volume": 50, "difficulty": 10, "intent": "transactional"}),
        ("100% cotton", {"volume": 700, "difficulty": 80, "status": "archived"}),
        ("nike store", {"intent": "navigational"}),
    ]
    for word, fields in specs:
        await t.keywords(word, **fields, cluster_ids=[cluster.id] if "run" in word else [])
    await t.keywords("running shoes", sector_id=other_sector, volume=5)
    return {"cluster": cluster.id, "other_sector": other_sector}


async def test_list_applies_every_filter(tenants: TenantFactory) -> None:
    t = await tenants.create()
    ids = await _catalogue(t)

    async def listed(**args: Any) -> set[str]:
        return set(await words(t, **args))

    main = {"sector_id": t.sector_id}
    assert len(await listed()) == 5  # two "running shoes", one per sector
    assert await count(t) == 6
    assert await count(t, site_id=t.site_id) == 6
    assert await listed(sector_id=ids["other_sector"]) == {"running shoes"}
    assert await listed(status="active") == {"running shoes"}
    assert await listed(status="archived") == {"100% cotton"}
    assert await count(t, status="pending") == 4
    assert await listed(cluster_id=ids["cluster"]) == {"running shoes", "trail running", "buy running socks"}
    assert await count(t, cluster_id=ids["cluster"]) == 3
    assert await listed(intent="navigational") == {"nike store"}
    assert await listed(difficulty_min=30, **main) == {"running shoes", "trail running", "100% cotton"}
    assert await listed(difficulty_max=30, **main) == {"trail running", "buy running socks"}
    assert await listed(difficulty_min=30, difficulty_max=60) == {"running shoes", "trail running"}
    assert await listed(volume_min=300, **main) == {"running shoes", "trail running", "100% cotton"}
    assert await listed(volume_max=300, **main) == {"trail running", "buy running socks"}
    assert await listed(volume_min=50, volume_max=50) == {"buy running socks"}
    assert await listed(volume_min=1) == await listed(volume_max=10**6)  # unknown volume never matches
    assert await listed(intent="commercial", status="active", volume_min=1000, **main) == {"running shoes"}
    assert await listed(intent="commercial", status="pending") == set()


async def test_list_filters_reject_bad_values(tenants: TenantFactory) -> None:
    t = await tenants.create()
    await field_error(t.run("keywords.list", status="gone"), "status")
    await field_error(t.run("keywords.list", intent="curious"), "intent")
    await field_error(t.run("keywords.list", difficulty_min=101), "difficulty_min")
    await field_error(t.run("keywords.list", volume_max=-1), "volume_max")
    await field_error(t.run("keywords.list", difficulty_min=50, difficulty_max=10), "difficulty_max")
    await field_error(t.run("keywords.list", volume_min=50, volume_max=10), "volume_max")
    await field_error(t.run("keywords.list", colour="red"), "colour")


async def test_search_matches_substrings_case_and_space_insensitively(tenants: TenantFactory) -> None:
    t = await tenants.create()
    await _catalogue(t)
    main = {"sector_id": t.sector_id}
    assert set(await words(t, search="RUNNING", **main)) == {
        "running shoes",
        "trail running",
        "buy running socks",
    }
    assert await words(t, search="  Running   Shoes ", **main) == ["running shoes"]
    assert await words(t, search="100%") == ["100% cotton"]
    assert await words(t, search="0%c") == []  # % is literal, not a wildcard
    assert await words(t, search="_") == []
    assert await words(t, search="socks", intent="commercial") == []


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("created_at", ["a", "b", "c", "d"]),
        ("-created_at", ["d", "c", "b", "a"]),
        ("volume", ["c", "a", "d", "b"]),
        ("-volume", ["d", "a", "c", "b"]),
        ("difficulty", ["b", "d", "a", "c"]),
        ("-difficulty", ["c", "a", "d", "b"]),
        ("keyword", ["a", "b", "c", "d"]),
        ("-keyword", ["d", "c", "b", "a"]),
        (None, ["d", "c", "b", "a"]),
    ],
)
async def test_ordering_both_directions_with_unknown_values_last(
    tenants: TenantFactory, ordering: str | None, expected: list[str]
) -> None:
    t = await tenants.create()
    for word, volume, difficulty in (("a", 20, 50), ("b", None, 10), ("c", 5, 90), ("d", 20, 30)):
        await t.keywords(word, volume=volume, difficulty=difficulty)
    args = {"ordering": ordering} if ordering else {}
    assert await words(t, **args) == expected


@pytest.mark.parametrize("ordering", ["colour", "-", "--volume", "id", "volume,keyword"])
async def test_invalid_ordering_names_the_field(tenants: TenantFactory, ordering: str) -> None:
    t = await tenants.create()
    error = await field_error(t.run("keywords.list", ordering=ordering), "ordering")
    assert "created_at" in error.message


async def test_pagination_reports_count_next_and_previous(tenants: TenantFactory) -> None:
    t = await tenants.create()
    await t.keywords(*(f"kw {n}" for n in range(7)))
    pages = [await t.run("keywords.list", page=n, page_size=3, ordering="created_at") for n in (1, 2, 3, 4)]
    assert [p.count for p in pages] == [7, 7, 7, 7]
    assert [(p.previous, p.next) for p in pages] == [(None, 2), (1, 3), (2, None), (3, None)]
    assert [[k.keyword for k in p.results] for p in pages] == [
        ["kw 0", "kw 1", "kw 2"],
        ["kw 3", "kw 4", "kw 5"],
        ["kw 6"],
        [],
    ]
    exact = await t.run("keywords.list", page_size=7)
    assert (len(exact.results), exact.next) == (7, None)
    assert (await t.run("keywords.list", page_size=500)).page_size == 500
    await field_error(t.run("keywords.list", page_size=0), "page_size")
    await field_error(t.run("keywords.list", page_size=501), "page_size")
    await field_error(t.run("keywords.list", page=0), "page")
    await field_error(t.run("keywords.list", page="two"), "page")


async def test_list_sees_only_the_callers_account(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    await t.keywords("mine")
    await u.keywords("theirs")
    assert await words(t) == ["mine"]
    assert await words(t, site_id=u.site_id) == []
    assert await words(t, search="theirs") == []


async def test_viewer_reads_but_cannot_write(tenants: TenantFactory) -> None:
    t = await tenants.create()
    [kid] = await t.keywords("shoes")
    viewer = await t.user(Role.VIEWER, site_ids=(t.site_id,))
    assert (await t.run("keywords.list", as_=viewer)).count == 1
    assert (await t.run("keywords.get", id=kid, as_=viewer)).keyword == "shoes"
    with pytest.raises(PermissionDenied):
        await t.run("keywords.create", as_=viewer, site_id=t.site_id, sector_id=t.sector_id, keyword="x")
    with pytest.raises(PermissionDenied):
        await t.run("keywords.bulk_delete", as_=viewer, confirmed=True, ids=[kid])
    assert await count(t) == 1


# --- bulk --------------------------------------------------------------------------------------


async def test_bulk_delete_needs_confirmation_then_reports_not_found(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    a, b, _ = await t.keywords("a", "b", "c")
    [theirs] = await u.keywords("theirs")
    with pytest.raises(ConfirmationRequired) as info:
        await t.run("keywords.bulk_delete", ids=[a, b])
    assert info.value.request.action == "keywords.bulk_delete"
    assert info.value.request.arguments == {"ids": [a, b]}
    assert await count(t) == 3
    out = await t.run("keywords.bulk_delete", confirmed=True, ids=[a, b, b, theirs, 999_999_999])
    assert (out.requested, out.affected) == (4, 2)
    assert out.not_found == sorted([theirs, 999_999_999])
    assert await words(t) == ["c"]
    assert await words(u) == ["theirs"]
    await field_error(t.run("keywords.bulk_delete", confirmed=True, ids=[]), "ids")


async def test_bulk_delete_unlinks_clusters(tenants: TenantFactory) -> None:
    t = await tenants.create()
    cluster = await new_cluster(t, "C")
    ids = await t.keywords("a", "b", "c", volume=10, cluster_ids=[cluster.id])
    await t.run("keywords.bulk_delete", confirmed=True, ids=ids[:2])
    after = await t.run("clusters.get", id=cluster.id)
    assert (after.keywords_count, after.volume) == (1, 10)


async def test_bulk_update_status(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    a, b, _ = await t.keywords("a", "b", "c")
    [theirs] = await u.keywords("theirs")
    out = await t.run("keywords.bulk_update_status", ids=[a, b, theirs, 999_999_999], status="archived")
    assert (out.requested, out.affected, out.not_found) == (4, 2, sorted([theirs, 999_999_999]))
    assert set(await words(t, status="archived")) == {"a", "b"}
    assert await words(t, status="pending") == ["c"]
    assert (await u.run("keywords.get", id=theirs)).status == "pending"
    await field_error(t.run("keywords.bulk_update_status", ids=[a], status="gone"), "status")
    await field_error(t.run("keywords.bulk_update_status", ids=[], status="active"), "ids")
    await field_error(t.run("keywords.bulk_update_status", ids=[a]), "status")


@pytest.mark.parametrize(
    ("action", "args", "field"),
    [
        ("keywords.get", {"id": 2**63}, "id"),
        ("keywords.get", {"id": 0}, "id"),
        ("keywords.list", {"cluster_id": 2**63}, "cluster_id"),
        ("keywords.list", {"sector_id": -1}, "sector_id"),
        ("keywords.bulk_update_status", {"ids": [1, 2**64], "status": "active"}, "ids.1"),
        ("keywords.update", {"id": 1, "cluster_ids": [2**63]}, "cluster_ids.0"),
        ("keywords.create", {"site_id": 2**63, "sector_id": 1, "keyword": "x"}, "site_id"),
    ],
)
async def test_ids_beyond_the_database_range_name_the_field(
    tenants: TenantFactory, action: str, args: dict[str, Any], field: str
) -> None:
    """A 64-bit overflow would otherwise surface as a driver error instead of a field error."""
    t = await tenants.create()
    await field_error(t.run(action, **args), field)
