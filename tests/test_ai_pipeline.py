"""The whole content pipeline on the offline provider: keywords → clusters → ideas → tasks →
content → image prompts → images, with credits reserved, settled and logged at each step."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from storage.exceptions import InsufficientCredits, ValidationFailed
from storage.models import CreditUsageLog
from tools.ai.offline import OFFLINE_LABEL
from tools.registry import ProgressEvent

KEYWORDS = """keyword,volume
best running shoes,22000
running shoes for flat feet,6600
trail running shoes,14800
cheap running shoes,5400
marathon training plan,18100
beginner marathon training plan,5400
half marathon training plan,9900
marathon training schedule,4400
"""


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    from storage.settings import get_settings

    monkeypatch.setattr(get_settings(), "data_dir", tmp_path)


async def _usage(tenant) -> list[tuple[str, int]]:
    async with tenant.db.transaction(tenant.owner) as s:
        rows = (await s.scalars(select(CreditUsageLog).order_by(CreditUsageLog.id))).all()
    return [(r.operation_type, r.credits_used) for r in rows]


async def test_offline_pipeline_charges_and_logs_each_step(tenants, tmp_path: Path):
    t = await tenants.create(credits=1000)
    events: list[ProgressEvent] = []

    async def progress(event: ProgressEvent) -> None:
        events.append(event)

    imported = await t.run(
        "keywords.import_csv", site_id=t.site_id, sector_id=t.sector_id, file=KEYWORDS.encode()
    )
    assert imported.imported == 8

    from tools.registry import invoke

    clustered = await invoke(
        "keywords.auto_cluster", {"sector_id": t.sector_id}, db=t.db, tenant=t.owner, progress=progress
    )
    assert clustered.provider == "offline" and not clustered.failed
    assert clustered.succeeded[0]["keywords_clustered"] == 8 and clustered.credits_used == 1
    assert {"validate", "prepare", "item", "save", "done"} <= {e.phase for e in events}
    clusters = await t.run("clusters.list")
    assert clusters.count >= 2 and sum(c.keywords_count for c in clusters.results) == 8

    ideas = await t.run(
        "clusters.auto_generate_ideas", cluster_ids=[c.id for c in clusters.results], ideas_per_cluster=2
    )
    assert ideas.credits_used == 5 * clusters.count
    idea_page = await t.run("ideas.list", page_size=100)
    assert idea_page.count == 2 * clusters.count
    assert all(OFFLINE_LABEL in i.description for i in idea_page.results)

    queued = await t.run("tasks.create_from_ideas", ids=[idea_page.results[0].id])
    content = await t.run("tasks.auto_generate_content", task_ids=queued.created)
    written = await t.run("content.get", id=content.succeeded[0]["content_id"])
    assert written.html_content.startswith("<h1>") and OFFLINE_LABEL in written.html_content
    assert written.word_count > 300 and written.meta_title and written.primary_keyword
    assert content.credits_used == -(-written.word_count // 100)

    prompts = await t.run("content.generate_image_prompts", content_ids=[written.id], max_in_article=2)
    image_ids = prompts.succeeded[0]["image_ids"]
    assert len(image_ids) == 3
    images = await t.run("images.generate_images", image_ids=image_ids)
    assert images.credits_used == 15
    featured = await t.run("images.get", id=image_ids[0])
    assert featured.status == "generated"
    with PILImage.open(featured.image_path) as picture:
        assert picture.size == (1280, 720)
    assert Path(featured.image_path).is_relative_to(tmp_path)

    assert await _usage(t) == [
        ("clustering", 1),
        *[("idea_generation", 5)] * clusters.count,
        ("content_generation", content.credits_used),
        ("image_prompt_extraction", 2),
        *[("image_generation", 5)] * 3,
    ]
    spent = 1 + 5 * clusters.count + content.credits_used + 2 + 15
    assert (await t.run("billing.balance")).credits == 1000 - spent
    tx = await t.run("billing.transactions", page_size=100)
    assert sum(x.amount for x in tx.results) == -spent


async def test_not_enough_credits_means_no_work_and_no_charge(tenants):
    t = await tenants.create(credits=0)
    await t.keywords("red shoes", "blue shoes")
    with pytest.raises(InsufficientCredits):
        await t.run("keywords.auto_cluster", sector_id=t.sector_id)
    assert (await t.run("clusters.list")).count == 0
    assert (await t.run("billing.transactions")).count == 0


async def test_nothing_to_do_is_a_clear_error(tenants):
    t = await tenants.create(credits=100)
    with pytest.raises(ValidationFailed, match="keyword_ids"):
        await t.run("keywords.auto_cluster")
    with pytest.raises(ValidationFailed, match="not found"):
        await t.run("keywords.auto_cluster", keyword_ids=[999_999])
    with pytest.raises(ValidationFailed, match="cluster_ids"):
        await t.run("clusters.auto_generate_ideas", cluster_ids=[999_999])
    assert (await t.run("billing.balance")).credits == 100
