"""clusters.* and ideas.* through the registry, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from storage.exceptions import NotFound
from tests.factories import Tenant, TenantFactory
from tests.planner_support import call, field_error, new_cluster, new_sector


async def cluster_names(t: Tenant, **args: Any) -> list[str]:
    page = await t.run("clusters.list", page_size=500, **args)
    return [c.name for c in page.results]


async def titles(t: Tenant, **args: Any) -> list[str]:
    page = await t.run("ideas.list", page_size=500, **args)
    return [i.idea_title for i in page.results]


async def new_idea(t: Tenant, title: str, **args: Any) -> Any:
    args.setdefault("sector_id", t.sector_id)
    return await t.run("ideas.create", site_id=t.site_id, idea_title=title, **args)


# --- clusters ----------------------------------------------------------------------------------


async def test_cluster_metrics_are_computed_from_its_keywords(tenants: TenantFactory) -> None:
    t = await tenants.create()
    ids = await t.keywords("a", "b", volume=100)
    ids += await t.keywords("c")  # unknown volume counts as a keyword but adds nothing
    made = await new_cluster(t, "Shoes", description="All shoes", keyword_ids=ids)
    assert (made.name, made.description, made.status) == ("Shoes", "All shoes", "active")
    assert (made.keywords_count, made.volume, made.sector_id) == (3, 200, t.sector_id)
    empty = await new_cluster(t, "Empty")
    assert (empty.keywords_count, empty.volume) == (0, 0)
    await t.run("keywords.update", id=ids[2], volume=50)
    got = await t.run("clusters.get", id=made.id)
    assert (got.keywords_count, got.volume) == (3, 250)
    assert {c.name: (c.keywords_count, c.volume) for c in (await t.run("clusters.list")).results} == {
        "Shoes": (3, 250),
        "Empty": (0, 0),
    }
    assert (await t.run("keywords.get", id=ids[0])).cluster_ids == [made.id]


async def test_cluster_name_is_unique_per_sector(tenants: TenantFactory) -> None:
    t = await tenants.create()
    first = await new_cluster(t, "Shoes")
    second = await new_cluster(t, "Boots")
    await field_error(new_cluster(t, "Shoes"), "name")
    other = await new_cluster(t, "Shoes", await new_sector(t))
    assert other.name == "Shoes"
    await field_error(call(t, "clusters.update", id=second.id, name="Shoes"), "name")
    [kid] = await t.keywords("boot")
    # Also when keywords change in the same call (their lookup must not flush the clash first).
    await field_error(call(t, "clusters.update", id=second.id, name="Shoes", keyword_ids=[kid]), "name")
    assert (await call(t, "clusters.update", id=first.id, name="Shoes")).name == "Shoes"
    assert sorted(await cluster_names(t)) == ["Boots", "Shoes", "Shoes"]
    assert (await t.run("clusters.get", id=second.id)).keywords_count == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "ok", "status": "deleted"}, "status"),
        ({"name": "ok", "keyword_ids": [999_999_999]}, "keyword_ids"),
        ({"name": "ok", "volume": 5}, "volume"),
        ({"name": "ok", "keywords_count": 5}, "keywords_count"),
    ],
)
async def test_cluster_create_rejects_bad_input(
    tenants: TenantFactory, args: dict[str, Any], field: str
) -> None:
    t = await tenants.create()
    await field_error(call(t, "clusters.create", site_id=t.site_id, sector_id=t.sector_id, **args), field)
    assert await cluster_names(t) == []


async def test_cluster_refuses_keywords_of_another_sector(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    [elsewhere] = await t.keywords("elsewhere", sector_id=await new_sector(t))
    [theirs] = await u.keywords("theirs")
    [own] = await t.keywords("own")
    await field_error(new_cluster(t, "C", keyword_ids=[own, elsewhere]), "keyword_ids")
    await field_error(new_cluster(t, "C", keyword_ids=[theirs]), "keyword_ids")
    made = await new_cluster(t, "C", keyword_ids=[own])
    await field_error(call(t, "clusters.update", id=made.id, keyword_ids=[elsewhere]), "keyword_ids")
    assert (await t.run("clusters.get", id=made.id)).keywords_count == 1


async def test_cluster_update_replaces_keywords_only_when_given(tenants: TenantFactory) -> None:
    t = await tenants.create()
    a, b, c = await t.keywords("a", "b", "c", volume=10)
    made = await new_cluster(t, "C", keyword_ids=[a, b])
    out = await call(t, "clusters.update", id=made.id, keyword_ids=[b, c, c])
    assert (out.keywords_count, out.volume) == (2, 20)
    assert [(await t.run("keywords.get", id=k)).cluster_ids for k in (a, b, c)] == [[], [made.id], [made.id]]
    out = await call(t, "clusters.update", id=made.id, description="renamed", name="D")
    assert (out.name, out.description, out.keywords_count) == ("D", "renamed", 2)
    out = await call(t, "clusters.update", id=made.id, description=None, status="archived")
    assert (out.description, out.status) == (None, "archived")
    await field_error(call(t, "clusters.update", id=made.id, name=None), "name")
    await field_error(call(t, "clusters.update", id=made.id, status=None), "status")
    out = await call(t, "clusters.update", id=made.id, keyword_ids=[])
    assert (out.keywords_count, out.volume) == (0, 0)
    assert (await t.run("keywords.list", cluster_id=made.id)).count == 0


async def test_cluster_delete_keeps_keywords_and_unlinks_ideas(tenants: TenantFactory) -> None:
    t = await tenants.create()
    ids = await t.keywords("a", "b")
    made = await new_cluster(t, "C", keyword_ids=ids)
    idea = await new_idea(t, "Guide", keyword_cluster_id=made.id)
    out = await t.run("clusters.delete", id=made.id)
    assert (out.requested, out.affected) == (1, 1)
    with pytest.raises(NotFound):
        await t.run("clusters.get", id=made.id)
    with pytest.raises(NotFound):
        await t.run("clusters.delete", id=made.id)
    assert [(await t.run("keywords.get", id=k)).cluster_ids for k in ids] == [[], []]
    assert (await t.run("ideas.get", id=idea.id)).keyword_cluster_id is None


async def test_clusters_of_other_accounts_are_invisible(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    theirs = await new_cluster(u, "Theirs")
    with pytest.raises(NotFound):
        await t.run("clusters.get", id=theirs.id)
    with pytest.raises(NotFound):
        await call(t, "clusters.update", id=theirs.id, name="Mine")
    with pytest.raises(NotFound):
        await t.run("clusters.delete", id=theirs.id)
    assert await cluster_names(t) == []
    assert await cluster_names(u) == ["Theirs"]


async def test_cluster_list_filters_search_and_orders_by_metrics(tenants: TenantFactory) -> None:
    t = await tenants.create()
    other_sector = await new_sector(t)
    k1, k2, k3 = await t.keywords("k1", "k2", "k3", volume=10)
    [big] = await t.keywords("big", volume=1000)
    await new_cluster(t, "Alpha", keyword_ids=[k1, k2, k3])  # 3 keywords, volume 30
    await new_cluster(t, "Beta", keyword_ids=[big])  # 1 keyword, volume 1000
    await new_cluster(t, "Gamma 100%", status="archived")  # empty
    await new_cluster(t, "Delta", other_sector)
    assert await cluster_names(t, ordering="keywords_count", sector_id=t.sector_id) == [
        "Gamma 100%",
        "Beta",
        "Alpha",
    ]
    assert await cluster_names(t, ordering="-keywords_count", sector_id=t.sector_id) == [
        "Alpha",
        "Beta",
        "Gamma 100%",
    ]
    assert await cluster_names(t, ordering="volume", sector_id=t.sector_id) == ["Gamma 100%", "Alpha", "Beta"]
    assert await cluster_names(t, ordering="-volume", sector_id=t.sector_id) == [
        "Beta",
        "Alpha",
        "Gamma 100%",
    ]
    assert await cluster_names(t, ordering="name") == ["Alpha", "Beta", "Delta", "Gamma 100%"]
    assert await cluster_names(t, ordering="-name") == ["Gamma 100%", "Delta", "Beta", "Alpha"]
    assert await cluster_names(t, ordering="created_at") == ["Alpha", "Beta", "Gamma 100%", "Delta"]
    assert await cluster_names(t) == ["Delta", "Gamma 100%", "Beta", "Alpha"]
    assert await cluster_names(t, sector_id=other_sector) == ["Delta"]
    assert await cluster_names(t, site_id=t.site_id, status="archived") == ["Gamma 100%"]
    assert await cluster_names(t, search="ALP") == ["Alpha"]
    assert await cluster_names(t, search="0%") == ["Gamma 100%"]
    assert await cluster_names(t, search="a_p") == []
    page = await t.run("clusters.list", page_size=3, page=2, ordering="name")
    assert (page.count, page.previous, page.next, [c.name for c in page.results]) == (
        4,
        1,
        None,
        ["Gamma 100%"],
    )
    await field_error(t.run("clusters.list", ordering="description"), "ordering")
    await field_error(t.run("clusters.list", status="gone"), "status")
    await field_error(t.run("clusters.list", colour="red"), "colour")


# --- ideas -------------------------------------------------------------------------------------


async def test_idea_create_get_defaults_and_cluster_check(tenants: TenantFactory) -> None:
    t = await tenants.create()
    cluster = await new_cluster(t, "Shoes")
    foreign = await new_cluster(t, "Foreign", await new_sector(t))
    idea = await new_idea(t, "Best shoes", keyword_cluster_id=cluster.id, target_keywords="shoes, running")
    assert (idea.content_type, idea.content_structure, idea.status) == ("blog_post", "article", "new")
    assert (idea.estimated_word_count, idea.description, idea.target_keywords) == (1000, "", "shoes, running")
    assert (idea.keyword_cluster_id, idea.sector_id, idea.site_id) == (cluster.id, t.sector_id, t.site_id)
    assert (await t.run("ideas.get", id=idea.id)).idea_title == "Best shoes"
    await field_error(new_idea(t, "X", keyword_cluster_id=foreign.id), "keyword_cluster_id")
    await field_error(new_idea(t, "X", keyword_cluster_id=999_999_999), "keyword_cluster_id")
    await field_error(new_idea(t, "X", estimated_word_count=50), "estimated_word_count")
    await field_error(new_idea(t, "X", content_type="poem"), "content_type")
    await field_error(new_idea(t, ""), "idea_title")
    await field_error(new_idea(t, "X", keyword_cluster="1"), "keyword_cluster")
    assert await titles(t) == ["Best shoes"]


async def test_idea_update_is_partial_and_checks_the_cluster(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    a = await new_cluster(t, "A")
    b = await new_cluster(t, "B")
    foreign = await new_cluster(t, "Foreign", await new_sector(t))
    theirs = await new_cluster(u, "Theirs")
    idea = await new_idea(t, "Guide", keyword_cluster_id=a.id, description="draft")
    out = await t.run("ideas.update", id=idea.id, status="scheduled", keyword_cluster_id=b.id)
    assert (out.status, out.keyword_cluster_id, out.description, out.idea_title) == (
        "scheduled",
        b.id,
        "draft",
        "Guide",
    )
    await field_error(t.run("ideas.update", id=idea.id, keyword_cluster_id=foreign.id), "keyword_cluster_id")
    await field_error(t.run("ideas.update", id=idea.id, keyword_cluster_id=theirs.id), "keyword_cluster_id")
    await field_error(t.run("ideas.update", id=idea.id, idea_title=None), "idea_title")
    await field_error(t.run("ideas.update", id=idea.id, description=None), "description")
    await field_error(t.run("ideas.update", id=idea.id, estimated_word_count=30_000), "estimated_word_count")
    await field_error(t.run("ideas.update", id=idea.id, sector_id=t.sector_id), "sector_id")
    out = await t.run("ideas.update", id=idea.id, keyword_cluster_id=None, idea_title="Final guide")
    assert (out.keyword_cluster_id, out.idea_title, out.status) == (None, "Final guide", "scheduled")
    with pytest.raises(NotFound):
        await u.run("ideas.update", id=idea.id, idea_title="stolen")


async def test_idea_delete(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    idea = await new_idea(t, "Gone")
    with pytest.raises(NotFound):
        await u.run("ideas.delete", id=idea.id)
    assert (await t.run("ideas.delete", id=idea.id)).affected == 1
    with pytest.raises(NotFound):
        await t.run("ideas.get", id=idea.id)
    assert await titles(t) == []


async def test_idea_list_filters_and_ordering(tenants: TenantFactory) -> None:
    t = await tenants.create()
    other_sector = await new_sector(t)
    cluster = await new_cluster(t, "C")
    await new_idea(t, "Beta", keyword_cluster_id=cluster.id, estimated_word_count=3000, content_type="guide")
    await new_idea(t, "Alpha", status="published", content_structure="listicle", estimated_word_count=500)
    await new_idea(t, "Gamma_1", sector_id=other_sector, estimated_word_count=1500, status="scheduled")
    assert await titles(t) == ["Gamma_1", "Alpha", "Beta"]
    assert await titles(t, ordering="created_at") == ["Beta", "Alpha", "Gamma_1"]
    assert await titles(t, ordering="idea_title") == ["Alpha", "Beta", "Gamma_1"]
    assert await titles(t, ordering="-idea_title") == ["Gamma_1", "Beta", "Alpha"]
    assert await titles(t, ordering="estimated_word_count") == ["Alpha", "Gamma_1", "Beta"]
    assert await titles(t, ordering="-estimated_word_count") == ["Beta", "Gamma_1", "Alpha"]
    assert await titles(t, ordering="status") == ["Beta", "Alpha", "Gamma_1"]
    assert await titles(t, sector_id=other_sector) == ["Gamma_1"]
    assert await titles(t, site_id=t.site_id, status="published") == ["Alpha"]
    assert await titles(t, keyword_cluster_id=cluster.id) == ["Beta"]
    assert await titles(t, content_type="guide") == ["Beta"]
    assert await titles(t, content_structure="listicle") == ["Alpha"]
    assert await titles(t, search="gam") == ["Gamma_1"]
    assert await titles(t, search="a_") == ["Gamma_1"]
    assert await titles(t, search="%") == []
    await field_error(t.run("ideas.list", ordering="description"), "ordering")
    await field_error(t.run("ideas.list", content_type="poem"), "content_type")
