"""Writer actions (tasks, content, images, content maps) and the HTML helpers, on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from storage.exceptions import ConfirmationRequired, NotFound, PermissionDenied, ValidationFailed
from storage.models import Role, SiteBlueprint, SiteBlueprintTaxonomy
from tests.factories import Tenant, TenantFactory
from tests.planner_support import field_error, new_cluster, new_sector, new_site
from tools.registry import registry
from tools.writer.html import normalize_content, sanitize_html, word_count

# --- HTML helpers ------------------------------------------------------------------------------


def test_sanitize_keeps_article_markup_and_strips_the_dangerous() -> None:
    dirty = (
        '<h2 style="color:red" onclick="x()">Title</h2><script>alert(1)</script><style>p{}</style>'
        '<p>Hi <strong>there</strong> <em>you</em><img src="/a.png" alt="A" onerror="alert(1)"></p>'
        '<a href="javascript:alert(1)">bad</a><a href="https://ex.com" title="t" target="_blank">ok</a>'
        "<iframe src='https://evil'></iframe><table><tr><td colspan=\"2\">c</td></tr></table>"
        '<img src="data:image/png;base64,AAAA"><!-- note --><form><input></form>\x00'
    )
    clean = sanitize_html(dirty)
    for gone in ("script", "alert", "style", "onclick", "onerror", "javascript", "iframe", "data:", "note"):
        assert gone not in clean
    assert "<form" not in clean and "<input" not in clean and "\x00" not in clean
    assert "<h2>Title</h2>" in clean
    assert '<img src="/a.png" alt="A">' in clean
    assert '<a href="https://ex.com" title="t" rel="noopener noreferrer">ok</a>' in clean
    assert '<td colspan="2">c</td>' in clean
    assert "<strong>there</strong> <em>you</em>" in clean


def test_sanitize_allows_every_article_tag() -> None:
    markup = (
        "<h1>a</h1><h3>b</h3><h6>c</h6><ul><li>d</li></ul><ol><li>e</li></ol><blockquote>f</blockquote>"
        '<figure><img src="https://x/i.png" alt="i"><figcaption>g</figcaption></figure>'
        "<pre><code>h</code></pre><p>i<br>j</p><hr>"
        "<table><thead><tr><th>k</th></tr></thead><tbody><tr><td>l</td></tr></tbody></table>"
    )
    assert sanitize_html(markup) == markup


@pytest.mark.parametrize(
    ("markup", "words"),
    [
        ("", 0),
        ("<p>one two three</p>", 3),
        ("<p>a</p><p>b</p><h2>c</h2><ul><li>d</li><li>e</li></ul>", 5),
        ("un<strong>believ</strong>able", 1),
        ("<p>don't e-mail 3.5 don\u2019t</p>", 4),
        ('<p>a &amp; b &mdash; c</p><img src="x" alt="many words here">', 3),
        ("<script>var a = 1;</script><style>p {}</style><!-- hidden words --><p>seen</p>", 1),
        ("<p>  spaced\n\n  out\twords </p>", 3),
    ],
)
def test_word_count_counts_visible_words(markup: str, words: int) -> None:
    assert word_count(markup) == words


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", ""),
        ("   \n ", ""),
        ("Just one line.", "<p>Just one line.</p>"),
        ("First para\nstill first.\n\nSecond para.", "<p>First para still first.</p>\n<p>Second para.</p>"),
        ("# Title\n\nBody", "<h1>Title</h1>\n<p>Body</p>"),
        ("### Deep ###\ntext", "<h3>Deep</h3>\n<p>text</p>"),
        ("- a\n- b\n\n1. c\n2) d", "<ul><li>a</li><li>b</li></ul>\n<ol><li>c</li><li>d</li></ol>"),
        ("Intro:\n* x\n* y", "<p>Intro:</p>\n<ul><li>x</li><li>y</li></ul>"),
        ("> quoted\n> twice", "<blockquote><p>quoted twice</p></blockquote>"),
        ("a\n\n---\n\nb", "<p>a</p>\n<hr>\n<p>b</p>"),
        ("```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"),
        ("**bold** and *em* and `c`", "<p><strong>bold</strong> and <em>em</em> and <code>c</code></p>"),
        ("[link](https://ex.com/a)", '<p><a href="https://ex.com/a">link</a></p>'),
        ("1 < 2 & 3 > 2", "<p>1 &lt; 2 &amp; 3 &gt; 2</p>"),
        ("keep <em>inline</em> &amp; entities", "<p>keep <em>inline</em> &amp; entities</p>"),
        ("<p>Already HTML</p>\n<p>Two</p>", "<p>Already HTML</p>\n<p>Two</p>"),
        (
            "<!DOCTYPE html><html><head><title>T</title><style>x</style></head>"
            "<body class='b'><h1>Doc</h1><p>Body</p></body></html>",
            "<h1>Doc</h1><p>Body</p>",
        ),
        ("<html><head><title>T</title></head><h2>No body tag</h2></html>", "<h2>No body tag</h2>"),
    ],
)
def test_normalize_content(given: str, expected: str) -> None:
    assert normalize_content(given) == expected


# --- a writer world ----------------------------------------------------------------------------


@dataclass
class World:
    cluster: int
    idea: int
    task: int
    content: int
    image: int
    taxonomy: int


async def taxonomy(t: Tenant, sector_id: int | None = None) -> int:
    """Blueprint taxonomies have no actions yet; write one through a tenant-bound session."""
    async with t.db.transaction(t.owner) as session:
        blueprint = SiteBlueprint(site_id=t.site_id, sector_id=sector_id or t.sector_id, name="bp")
        session.add(blueprint)
        await session.flush()
        tax = SiteBlueprintTaxonomy(
            site_id=t.site_id,
            sector_id=sector_id or t.sector_id,
            site_blueprint_id=blueprint.id,
            name="Guides",
            slug=f"guides-{blueprint.id}",
        )
        session.add(tax)
        await session.flush()
        return tax.id


async def task(t: Tenant, title: str = "Write about shoes", **args: Any) -> Any:
    return await t.run("tasks.create", site_id=t.site_id, sector_id=t.sector_id, title=title, **args)


async def world(t: Tenant) -> World:
    cluster = await new_cluster(t, "Shoes")
    idea = await t.run(
        "ideas.create",
        site_id=t.site_id,
        sector_id=t.sector_id,
        idea_title="Best shoes",
        keyword_cluster_id=cluster.id,
    )
    made = await task(t, cluster_id=cluster.id, idea_id=idea.id)
    content = await t.run("content.create", task_id=made.id, html_content="<p>hello world</p>")
    image = await t.run("images.create", content_id=content.id, task_id=made.id, prompt="a shoe")
    tax = await taxonomy(t)
    await t.run("content_maps.set_clusters", content_id=content.id, clusters=[{"cluster_id": cluster.id}])
    await t.run("content_maps.set_taxonomies", content_id=content.id, taxonomy_ids=[tax])
    return World(cluster.id, idea.id, made.id, content.id, image.id, tax)


async def titles(t: Tenant, **args: Any) -> list[str]:
    return [x.title for x in (await t.run("tasks.list", page_size=500, **args)).results]


# --- tasks -------------------------------------------------------------------------------------


async def test_task_create_get_and_defaults(tenants: TenantFactory) -> None:
    t = await tenants.create()
    out = await task(t, title="  Shoes\x00 guide ", keywords="shoes, boots", description="d")
    assert (out.title, out.keywords, out.description) == ("Shoes guide", "shoes, boots", "d")
    assert (out.status, out.content_type, out.content_structure) == ("queued", "blog_post", "article")
    assert (out.cluster_id, out.idea_id, out.word_count) == (None, None, 0)
    assert (out.site_id, out.sector_id) == (t.site_id, t.sector_id)
    got = await t.run("tasks.get", id=out.id)
    assert got == out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": " \x00 "}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "ok", "status": "done"}, "status"),
        ({"title": "ok", "content_type": "poem"}, "content_type"),
        ({"title": "ok", "content_structure": "maze"}, "content_structure"),
        ({"title": "ok", "word_count": -1}, "word_count"),
        ({"title": "ok", "word_count": 2**31}, "word_count"),
        ({"title": "ok", "colour": "red"}, "colour"),
        ({}, "title"),
        ({"title": "ok", "cluster_id": 999_999_999}, "cluster_id"),
        ({"title": "ok", "idea_id": 999_999_999}, "idea_id"),
    ],
)
async def test_task_create_rejects_bad_input_naming_the_field(
    tenants: TenantFactory, args: dict[str, Any], field: str
) -> None:
    t = await tenants.create()
    await field_error(t.run("tasks.create", site_id=t.site_id, sector_id=t.sector_id, **args), field)
    assert (await t.run("tasks.list")).count == 0


async def test_task_links_must_share_the_sector(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    other = await new_sector(t)
    far_cluster = await new_cluster(t, "Far", other)
    far_idea = await t.run("ideas.create", site_id=t.site_id, sector_id=other, idea_title="Far idea")
    error = await field_error(task(t, cluster_id=far_cluster.id), "cluster_id")
    assert f"not sector {t.sector_id}" in error.message
    await field_error(task(t, idea_id=far_idea.id), "idea_id")
    theirs = await new_cluster(u, "Theirs")
    await field_error(task(t, cluster_id=theirs.id), "cluster_id")
    near = await new_cluster(t, "Near")
    made = await task(t, cluster_id=near.id)
    await field_error(t.run("tasks.update", id=made.id, cluster_id=far_cluster.id), "cluster_id")
    await field_error(t.run("tasks.update", id=made.id, idea_id=far_idea.id), "idea_id")
    assert (await t.run("tasks.get", id=made.id)).cluster_id == near.id


async def test_task_update_is_partial_and_clears_links(tenants: TenantFactory) -> None:
    t = await tenants.create()
    cluster = await new_cluster(t, "C")
    made = await task(t, keywords="k", cluster_id=cluster.id)
    out = await t.run("tasks.update", id=made.id, status="in_progress", word_count=900)
    assert (out.title, out.keywords, out.status, out.word_count) == (made.title, "k", "in_progress", 900)
    assert out.cluster_id == cluster.id and out.updated_at >= made.updated_at
    assert (await t.run("tasks.update", id=made.id, cluster_id=None)).cluster_id is None
    await field_error(t.run("tasks.update", id=made.id, title=None), "title")
    await field_error(t.run("tasks.update", id=made.id, title="  "), "title")
    await field_error(t.run("tasks.update", id=made.id, status="done"), "status")
    await field_error(t.run("tasks.update", id=made.id, sector_id=t.sector_id), "sector_id")


async def test_task_list_filters_search_ordering_and_pages(tenants: TenantFactory) -> None:
    t = await tenants.create()
    cluster = await new_cluster(t, "C")
    other = await new_sector(t)
    await task(t, "Alpha", keywords="red shoes", word_count=300, cluster_id=cluster.id)
    await task(t, "Beta", keywords="blue 100%", word_count=100, status="completed", content_type="guide")
    await task(t, "Gamma", word_count=200, content_structure="how_to", status="failed")
    await t.run("tasks.create", site_id=t.site_id, sector_id=other, title="Delta", word_count=50)
    assert await titles(t) == ["Delta", "Gamma", "Beta", "Alpha"]
    assert await titles(t, status="completed") == ["Beta"]
    assert await titles(t, cluster_id=cluster.id) == ["Alpha"]
    assert await titles(t, content_type="guide") == ["Beta"]
    assert await titles(t, content_structure="how_to") == ["Gamma"]
    assert await titles(t, sector_id=other) == ["Delta"]
    assert len(await titles(t, site_id=t.site_id)) == 4
    assert await titles(t, search="RED") == ["Alpha"]
    assert await titles(t, search="gam") == ["Gamma"]
    assert await titles(t, search="0%") == ["Beta"]
    assert await titles(t, search="_") == []
    assert await titles(t, ordering="title") == ["Alpha", "Beta", "Delta", "Gamma"]
    assert await titles(t, ordering="-word_count") == ["Alpha", "Gamma", "Beta", "Delta"]
    assert await titles(t, ordering="status", sector_id=t.sector_id) == ["Beta", "Gamma", "Alpha"]
    assert await titles(t, ordering="created_at") == ["Alpha", "Beta", "Gamma", "Delta"]
    page = await t.run("tasks.list", page=2, page_size=3, ordering="title")
    assert ([x.title for x in page.results], page.count, page.previous, page.next) == (["Gamma"], 4, 1, None)
    await field_error(t.run("tasks.list", ordering="keywords"), "ordering")
    await field_error(t.run("tasks.list", status="done"), "status")


async def test_task_delete_and_bulk_operations(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    a, b, c = [(await task(t, name)).id for name in ("a", "b", "c")]
    theirs = (await task(u, "theirs")).id
    out = await t.run("tasks.bulk_update", ids=[a, b, theirs, 999_999_999], status="completed")
    assert (out.requested, out.affected, out.not_found) == (4, 2, sorted([theirs, 999_999_999]))
    assert sorted(await titles(t, status="completed")) == ["a", "b"]
    assert (await u.run("tasks.get", id=theirs)).status == "queued"
    await field_error(t.run("tasks.bulk_update", ids=[a], status="done"), "status")
    await field_error(t.run("tasks.bulk_update", ids=[], status="failed"), "ids")
    with pytest.raises(ConfirmationRequired):
        await t.run("tasks.bulk_delete", ids=[a])
    out = await t.run("tasks.bulk_delete", confirmed=True, ids=[a, b, b, theirs])
    assert (out.requested, out.affected, out.not_found) == (3, 2, [theirs])
    assert (await t.run("tasks.delete", id=c)).affected == 1
    with pytest.raises(NotFound):
        await t.run("tasks.get", id=c)
    assert await titles(t) == []
    assert await titles(u) == ["theirs"]


async def test_deleting_a_task_drops_its_images_and_unlinks_its_content(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    await t.run("tasks.delete", id=w.task)
    assert (await t.run("content.get", id=w.content)).task_id is None
    assert (await t.run("images.list", content_id=w.content)).count == 0


async def test_create_from_ideas(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    cluster = await new_cluster(t, "C")
    first = await t.run(
        "ideas.create",
        site_id=t.site_id,
        sector_id=t.sector_id,
        idea_title="How to lace shoes",
        description="Step by step",
        content_type="guide",
        content_structure="how_to",
        target_keywords="lace shoes, shoe laces",
        keyword_cluster_id=cluster.id,
    )
    other = await new_sector(t)
    second = await t.run("ideas.create", site_id=t.site_id, sector_id=other, idea_title="Boots")
    theirs = await u.run("ideas.create", site_id=u.site_id, sector_id=u.sector_id, idea_title="Theirs")
    out = await t.run("tasks.create_from_ideas", ids=[first.id, theirs.id, second.id, first.id, 999_999_999])
    assert out.requested == 4
    assert len(out.created) == 2 and out.already_queued == []
    assert out.not_found == [theirs.id, 999_999_999]
    made = await t.run("tasks.get", id=out.created[0])
    assert (made.title, made.description, made.keywords) == (
        "How to lace shoes",
        "Step by step",
        "lace shoes, shoe laces",
    )
    assert (made.content_type, made.content_structure, made.cluster_id) == ("guide", "how_to", cluster.id)
    assert (made.idea_id, made.status, made.site_id, made.sector_id) == (
        first.id,
        "queued",
        t.site_id,
        t.sector_id,
    )
    assert (await t.run("tasks.get", id=out.created[1])).sector_id == other
    assert (await t.run("ideas.get", id=first.id)).status == "scheduled"
    assert (await t.run("ideas.get", id=second.id)).status == "scheduled"
    assert (await u.run("ideas.get", id=theirs.id)).status == "new"
    again = await t.run("tasks.create_from_ideas", ids=[first.id, second.id])
    assert (again.created, again.already_queued) == ([], [first.id, second.id])
    assert (await t.run("tasks.list")).count == 2


# --- content -----------------------------------------------------------------------------------


async def test_content_create_sanitises_and_counts_words(tenants: TenantFactory) -> None:
    t = await tenants.create()
    out = await t.run(
        "content.create",
        site_id=t.site_id,
        sector_id=t.sector_id,
        title="Shoes",
        html_content='<h1>Shoes</h1><script>steal()</script><p onclick="x()">Good <b>shoes</b> here</p>'
        '<img src="x.png" onerror="alert(1)">',
        primary_keyword="running shoes",
        secondary_keywords=["trail", " Trail ", "", "road"],
        meta_title="Meta",
    )
    assert out.html_content == '<h1>Shoes</h1><p>Good <b>shoes</b> here</p><img src="x.png">'
    assert out.word_count == 4
    assert (out.status, out.task_id, out.secondary_keywords) == ("draft", None, ["trail", "road"])
    assert (out.primary_keyword, out.meta_title, out.meta_description) == ("running shoes", "Meta", None)
    assert await t.run("content.get", id=out.id) == out


async def test_content_create_normalises_text_and_documents(tenants: TenantFactory) -> None:
    t = await tenants.create()
    text = await t.run(
        "content.create", site_id=t.site_id, sector_id=t.sector_id, html_content="# Hi\n\nTwo words"
    )
    assert (text.html_content, text.word_count) == ("<h1>Hi</h1>\n<p>Two words</p>", 3)
    doc = await t.run(
        "content.create",
        site_id=t.site_id,
        sector_id=t.sector_id,
        html_content="<html><head><title>x</title></head><body><p>Body only</p></body></html>",
    )
    assert (doc.html_content, doc.word_count) == ("<p>Body only</p>", 2)


async def test_content_for_a_task(tenants: TenantFactory) -> None:
    t = await tenants.create()
    made = await task(t, "Task title")
    out = await t.run("content.create", task_id=made.id)
    assert (out.task_id, out.title, out.site_id, out.sector_id) == (
        made.id,
        "Task title",
        t.site_id,
        t.sector_id,
    )
    error = await field_error(t.run("content.create", task_id=made.id, title="again"), "task_id")
    assert f"task {made.id} already has content (id {out.id})" in error.message
    other = await new_sector(t)
    await field_error(t.run("content.create", task_id=made.id, sector_id=other), "task_id")
    await field_error(t.run("content.create", task_id=999_999_999), "task_id")
    await field_error(t.run("content.create", html_content="x"), "site_id")
    await field_error(t.run("content.create", site_id=t.site_id), "sector_id")
    spare = await task(t, "Spare")
    far_task = await t.run("tasks.create", site_id=t.site_id, sector_id=other, title="Far")
    second = await t.run("content.create", site_id=t.site_id, sector_id=t.sector_id)
    await field_error(t.run("content.update", id=second.id, task_id=made.id), "task_id")
    await field_error(t.run("content.update", id=second.id, task_id=far_task.id), "task_id")
    assert (await t.run("content.update", id=second.id, task_id=spare.id)).task_id == spare.id
    assert (await t.run("content.update", id=second.id, task_id=None)).task_id is None
    assert (await t.run("content.update", id=out.id, task_id=made.id)).task_id == made.id  # its own task


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"status": "live"}, "status"),
        ({"title": "x" * 256}, "title"),
        ({"wp_post_id": 0}, "wp_post_id"),
        ({"secondary_keywords": ["x" * 256]}, "secondary_keywords"),
        ({"secondary_keywords": "not a list"}, "secondary_keywords"),
        ({"html_content": 5}, "html_content"),
        ({"word_count": 5}, "word_count"),
    ],
)
async def test_content_create_rejects_bad_input(
    tenants: TenantFactory, args: dict[str, Any], field: str
) -> None:
    t = await tenants.create()
    await field_error(t.run("content.create", site_id=t.site_id, sector_id=t.sector_id, **args), field)


async def test_content_update_resanitises_and_recounts(tenants: TenantFactory) -> None:
    t = await tenants.create()
    made = await t.run(
        "content.create", site_id=t.site_id, sector_id=t.sector_id, html_content="<p>one two</p>", title="T"
    )
    out = await t.run("content.update", id=made.id, status="review", meta_description="m")
    assert (out.html_content, out.word_count, out.status, out.title) == ("<p>one two</p>", 2, "review", "T")
    out = await t.run(
        "content.update", id=made.id, html_content='<p>a b c</p><iframe src="x"></iframe><p onload="x">d</p>'
    )
    assert (out.html_content, out.word_count) == ("<p>a b c</p><p>d</p>", 4)
    out = await t.run("content.update", id=made.id, meta_description=None, status="published", wp_post_id=7)
    assert (out.meta_description, out.status, out.wp_post_id) == (None, "published", 7)
    await field_error(t.run("content.update", id=made.id, status=None), "status")
    await field_error(t.run("content.update", id=made.id, html_content=None), "html_content")
    await field_error(t.run("content.update", id=made.id, word_count=3), "word_count")


async def test_content_list_filters_search_and_ordering(tenants: TenantFactory) -> None:
    t = await tenants.create()
    made = await task(t)
    other = await new_sector(t)

    async def add(title: str, words: int, **args: Any) -> None:
        args.setdefault("sector_id", t.sector_id)
        await t.run("content.create", site_id=t.site_id, title=title, html_content="w " * words, **args)

    await add("Alpha", 3, primary_keyword="red shoes", status="published")
    await add("Beta", 1, task_id=made.id, status="review")
    await add("Gamma", 2, sector_id=other)

    async def listed(**args: Any) -> list[str]:
        return [c.title for c in (await t.run("content.list", **args)).results]

    assert await listed() == ["Gamma", "Beta", "Alpha"]
    assert await listed(status="review") == ["Beta"]
    assert await listed(task_id=made.id) == ["Beta"]
    assert await listed(sector_id=other) == ["Gamma"]
    assert await listed(site_id=t.site_id, ordering="title") == ["Alpha", "Beta", "Gamma"]
    assert await listed(search="RED") == ["Alpha"]
    assert await listed(search="amm") == ["Gamma"]
    assert await listed(ordering="-word_count") == ["Alpha", "Gamma", "Beta"]
    assert await listed(ordering="status") == ["Gamma", "Alpha", "Beta"]  # draft, published, review
    await field_error(t.run("content.list", ordering="html_content"), "ordering")
    await field_error(t.run("content.list", status="live"), "status")


async def test_content_delete_drops_images_and_maps(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    assert (await t.run("content.delete", id=w.content)).affected == 1
    with pytest.raises(NotFound):
        await t.run("content.get", id=w.content)
    with pytest.raises(NotFound):
        await t.run("images.get", id=w.image)
    assert (await t.run("tasks.get", id=w.task)).id == w.task
    # The task is free for new content again.
    assert (await t.run("content.create", task_id=w.task)).task_id == w.task


# --- images ------------------------------------------------------------------------------------


async def test_image_crud(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    made = await t.run(
        "images.create",
        task_id=w.task,
        image_type="in_article",
        prompt="a trail",
        image_url="https://cdn.example.com/a.png",
        position=2,
    )
    assert (made.task_id, made.content_id, made.site_id, made.sector_id) == (
        w.task,
        None,
        t.site_id,
        t.sector_id,
    )
    assert (made.image_type, made.status, made.position, made.image_path) == (
        "in_article",
        "pending",
        2,
        None,
    )
    assert await t.run("images.get", id=made.id) == made
    out = await t.run(
        "images.update", id=made.id, status="generated", content_id=w.content, image_path="/media/a.png"
    )
    assert (out.status, out.content_id, out.image_path, out.prompt) == (
        "generated",
        w.content,
        "/media/a.png",
        "a trail",
    )
    assert (await t.run("images.update", id=made.id, image_url=None)).image_url is None
    standalone = await t.run("images.create", site_id=t.site_id, sector_id=t.sector_id, image_type="mobile")
    assert (standalone.task_id, standalone.content_id) == (None, None)
    assert (await t.run("images.delete", id=standalone.id)).affected == 1
    with pytest.raises(NotFound):
        await t.run("images.get", id=standalone.id)


async def test_image_list_filters(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)  # one featured image of the task and content, position 0
    await t.run("images.create", task_id=w.task, image_type="desktop", position=3, status="failed")
    await t.run("images.create", content_id=w.content, image_type="in_article", position=1, prompt="Blue sky")

    async def types(**args: Any) -> list[str]:
        return [i.image_type for i in (await t.run("images.list", **args)).results]

    assert await types() == ["featured", "in_article", "desktop"]
    assert await types(task_id=w.task) == ["featured", "desktop"]
    assert await types(content_id=w.content) == ["featured", "in_article"]
    assert await types(image_type="desktop") == ["desktop"]
    assert await types(status="failed") == ["desktop"]
    assert await types(search="sky") == ["in_article"]
    assert await types(ordering="-position") == ["desktop", "in_article", "featured"]
    await field_error(t.run("images.list", image_type="banner"), "image_type")


async def test_image_validation(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    w = await world(t)
    other = await new_sector(t)
    far_task = await t.run("tasks.create", site_id=t.site_id, sector_id=other, title="Far")
    error = await field_error(t.run("images.create", task_id=far_task.id, content_id=w.content), "content_id")
    assert f"not sector {other}" in error.message
    await field_error(t.run("images.create", task_id=w.task, sector_id=other), "task_id")
    await field_error(t.run("images.create", task_id=999_999_999), "task_id")
    await field_error(t.run("images.create", content_id=999_999_999), "content_id")
    await field_error(t.run("images.create", prompt="no placement"), "site_id")
    for bad in ("javascript:alert(1)", "data:image/png;base64,AA", "//evil.com/x.png", "x" * 1001):
        await field_error(t.run("images.create", task_id=w.task, image_url=bad), "image_url")
    await field_error(t.run("images.create", task_id=w.task, image_type="banner"), "image_type")
    await field_error(t.run("images.create", task_id=w.task, status="done"), "status")
    await field_error(t.run("images.create", task_id=w.task, position=-1), "position")
    await field_error(t.run("images.update", id=w.image, task_id=far_task.id), "task_id")
    await field_error(t.run("images.update", id=w.image, image_type=None), "image_type")
    v = await world(u)
    await field_error(t.run("images.create", task_id=v.task), "task_id")
    await field_error(t.run("images.update", id=w.image, content_id=v.content), "content_id")


# --- content maps ------------------------------------------------------------------------------


async def test_content_maps_replace_each_kind(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    maps = await t.run("content_maps.list", content_id=w.content)
    assert [(c.cluster_id, c.role, c.source) for c in maps.clusters] == [(w.cluster, "hub", "manual")]
    assert [x.taxonomy_id for x in maps.taxonomies] == [w.taxonomy]
    assert maps.attributes == []
    second = await new_cluster(t, "Second")
    out = await t.run(
        "content_maps.set_clusters",
        content_id=w.content,
        clusters=[
            {"cluster_id": w.cluster, "role": "hub"},
            {"cluster_id": second.id, "role": "supporting"},
            {"cluster_id": second.id, "role": "supporting"},
            f"{w.cluster}:attribute",
        ],
        source="blueprint",
    )
    assert sorted((c.cluster_id, c.role, c.source) for c in out.clusters) == sorted(
        [
            (w.cluster, "hub", "blueprint"),
            (second.id, "supporting", "blueprint"),
            (w.cluster, "attribute", "blueprint"),
        ]
    )
    out = await t.run("content_maps.set_clusters", content_id=w.content, clusters=[second.id])
    assert [(c.cluster_id, c.role) for c in out.clusters] == [(second.id, "hub")]
    assert out.taxonomies == maps.taxonomies  # other kinds untouched
    out = await t.run(
        "content_maps.set_attributes",
        content_id=w.content,
        attributes=[{"name": "colour", "value": "red"}, "size=42", {"name": "waterproof"}],
    )
    assert [(a.name, a.value) for a in out.attributes] == [
        ("colour", "red"),
        ("size", "42"),
        ("waterproof", None),
    ]
    out = await t.run("content_maps.set_attributes", content_id=w.content, attributes=["size=43"])
    assert [(a.name, a.value) for a in out.attributes] == [("size", "43")]
    out = await t.run("content_maps.set_taxonomies", content_id=w.content, taxonomy_ids=[])
    assert out.taxonomies == [] and len(out.clusters) == 1 and len(out.attributes) == 1


async def test_content_maps_validate_ids_and_sector(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    w = await world(t)
    other = await new_sector(t)
    far = await new_cluster(t, "Far", other)
    far_tax = await taxonomy(t, other)
    theirs = await new_cluster(u, "Theirs")
    clusters = [{"cluster_id": w.cluster}, {"cluster_id": far.id}]
    error = await field_error(
        t.run("content_maps.set_clusters", content_id=w.content, clusters=clusters), "clusters.1.cluster_id"
    )
    assert f"not sector {t.sector_id}" in error.message
    await field_error(
        t.run("content_maps.set_clusters", content_id=w.content, clusters=[theirs.id]),
        "clusters.0.cluster_id",
    )
    await field_error(
        t.run(
            "content_maps.set_clusters",
            content_id=w.content,
            clusters=[{"cluster_id": w.cluster, "role": "x"}],
        ),
        "clusters.0.role",
    )
    await field_error(
        t.run("content_maps.set_taxonomies", content_id=w.content, taxonomy_ids=[w.taxonomy, far_tax]),
        "taxonomy_ids.1",
    )
    await field_error(
        t.run("content_maps.set_attributes", content_id=w.content, attributes=[{"name": " "}]),
        "attributes.0.name",
    )
    await field_error(
        t.run(
            "content_maps.set_attributes",
            content_id=w.content,
            attributes=[{"name": "a", "value": "v" * 256}],
        ),
        "attributes.0.value",
    )
    maps = await t.run("content_maps.list", content_id=w.content)
    assert [c.cluster_id for c in maps.clusters] == [w.cluster]
    assert [x.taxonomy_id for x in maps.taxonomies] == [w.taxonomy]


# --- isolation and roles -----------------------------------------------------------------------

# The writer's CRUD actions; the AI actions of the writer module (tools.ai) are tested with the pipeline.
WRITER_ACTIONS = sorted(a.name for a in registry if a.handler.__module__.startswith("tools.writer."))


def _target_calls(w: World, site_id: int, sector_id: int) -> dict[str, dict[str, Any]]:
    """For each writer action, arguments that aim at ``w``'s rows (placed in ``site_id``/``sector_id``)."""
    return {
        "tasks.list": {},
        "tasks.get": {"id": w.task},
        "tasks.create": {"site_id": site_id, "sector_id": sector_id, "title": "x"},
        "tasks.update": {"id": w.task, "title": "x"},
        "tasks.delete": {"id": w.task},
        "tasks.bulk_delete": {"ids": [w.task]},
        "tasks.bulk_update": {"ids": [w.task], "status": "failed"},
        "tasks.create_from_ideas": {"ids": [w.idea]},
        "content.list": {},
        "content.get": {"id": w.content},
        "content.create": {"site_id": site_id, "sector_id": sector_id, "html_content": "x"},
        "content.update": {"id": w.content, "title": "x"},
        "content.delete": {"id": w.content},
        "images.list": {},
        "images.get": {"id": w.image},
        "images.create": {"site_id": site_id, "sector_id": sector_id},
        "images.update": {"id": w.image, "prompt": "x"},
        "images.delete": {"id": w.image},
        "content_maps.list": {"content_id": w.content},
        "content_maps.set_clusters": {"content_id": w.content, "clusters": [w.cluster]},
        "content_maps.set_taxonomies": {"content_id": w.content, "taxonomy_ids": [w.taxonomy]},
        "content_maps.set_attributes": {"content_id": w.content, "attributes": ["a=b"]},
    }


def test_every_writer_action_is_covered() -> None:
    w = World(1, 1, 1, 1, 1, 1)
    assert sorted(_target_calls(w, 1, 1)) == WRITER_ACTIONS


async def test_another_tenants_ids_are_not_found_by_any_writer_action(tenants: TenantFactory) -> None:
    t, u = await tenants.create(), await tenants.create()
    w = await world(t)
    before = await t.run("content_maps.list", content_id=w.content)
    for name, args in _target_calls(w, t.site_id, t.sector_id).items():
        if name in ("tasks.list", "content.list", "images.list"):
            assert (await u.run(name, **args)).count == 0, name
        elif name.startswith("tasks.bulk") or name == "tasks.create_from_ideas":
            out = await u.run(name, confirmed=True, **args)
            assert out.not_found == args["ids"], name
        else:
            with pytest.raises(NotFound):
                await u.run(name, confirmed=True, **args)
    # Referencing t's rows from u's own site is a field error, and nothing of t's changed.
    await field_error(u.run("content.create", task_id=w.task), "task_id")
    await field_error(u.run("images.create", content_id=w.content), "content_id")
    v = await world(u)
    await field_error(
        u.run("tasks.create", site_id=u.site_id, sector_id=u.sector_id, title="x", idea_id=w.idea), "idea_id"
    )
    await field_error(u.run("tasks.update", id=v.task, cluster_id=w.cluster), "cluster_id")
    await field_error(u.run("content.update", id=v.content, task_id=w.task), "task_id")
    await field_error(
        u.run("content_maps.set_taxonomies", content_id=v.content, taxonomy_ids=[w.taxonomy]),
        "taxonomy_ids.0",
    )
    assert (await t.run("tasks.get", id=w.task)).title == "Write about shoes"
    assert (await t.run("tasks.get", id=w.task)).status == "queued"
    assert (await t.run("ideas.get", id=w.idea)).status == "new"
    assert (await t.run("images.get", id=w.image)).prompt == "a shoe"
    assert await t.run("content_maps.list", content_id=w.content) == before


async def test_editor_of_another_site_sees_nothing(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    other_site = await new_site(t)
    editor = await t.user(Role.EDITOR, site_ids=(other_site,))
    assert (await t.run("tasks.list", as_=editor)).count == 0
    for name, args in (("tasks.get", {"id": w.task}), ("content.update", {"id": w.content, "title": "x"})):
        with pytest.raises(NotFound):
            await t.run(name, as_=editor, **args)
    with pytest.raises(NotFound):
        await task(t, as_=editor)


async def test_viewer_reads_but_cannot_write(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    viewer = await t.user(Role.VIEWER, site_ids=(t.site_id,))
    calls = _target_calls(w, t.site_id, t.sector_id)
    for name in WRITER_ACTIONS:
        if registry.get(name).read_only:
            await t.run(name, as_=viewer, **calls[name])
        else:
            with pytest.raises(PermissionDenied):
                await t.run(name, as_=viewer, confirmed=True, **calls[name])
    assert (await t.run("tasks.get", id=w.task)).title == "Write about shoes"
    assert (await t.run("content.get", id=w.content)).html_content == "<p>hello world</p>"


async def test_inputs_reject_unknown_arguments(tenants: TenantFactory) -> None:
    t = await tenants.create()
    w = await world(t)
    for name, args in _target_calls(w, t.site_id, t.sector_id).items():
        with pytest.raises(ValidationFailed) as info:
            await t.run(name, confirmed=True, **args, account_id=1)
        assert [e.field for e in info.value.errors] == ["account_id"], name
