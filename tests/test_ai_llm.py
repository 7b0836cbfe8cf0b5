"""AI functions against a local server speaking the OpenAI (and Runware) wire protocol."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Content, CreditUsageLog
from tests.stubs.openai_stub import json_reply, text_reply
from tests.stubs.scripted import Reply

ARTICLE = {
    "title": "Trail Running Shoes Guide",
    "meta_title": "Trail Running Shoes: How to Choose",
    "meta_description": "Everything about trail running shoes.",
    "primary_keyword": "trail running shoes",
    "secondary_keywords": ["grip", "drop"],
    "html_content": "<h1>Trail Running Shoes</h1><p>Grip matters on trails.</p>"
    "<script>alert(1)</script><h2>Drop</h2><p>Lower drop means a more natural stride.</p>",
}


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    from storage.settings import get_settings

    monkeypatch.setattr(get_settings(), "data_dir", tmp_path)


async def _use_stub(t, stub) -> None:
    await t.run(
        "integrations.save",
        integration_type="openai",
        config={"base_url": stub.base_url, "api_key": stub.api_key, "model": stub.model},
    )


async def _task(t) -> int:
    return (
        await t.run(
            "tasks.create",
            site_id=t.site_id,
            sector_id=t.sector_id,
            title="Trail shoes",
            keywords="trail running shoes, grip",
        )
    ).id


async def _usage_rows(t):
    async with t.db.transaction(t.owner) as s:
        return (await s.scalars(select(CreditUsageLog).order_by(CreditUsageLog.id))).all()


async def test_generate_content_through_the_model(tenants, openai_stub):
    t = await tenants.create(credits=100)
    await _use_stub(t, openai_stub)
    openai_stub.chat(json_reply(ARTICLE, usage={"prompt_tokens": 700, "completion_tokens": 300}))
    result = await t.run("tasks.auto_generate_content", task_ids=[await _task(t)])

    assert result.provider == openai_stub.model and result.input_tokens == 700
    content = await t.run("content.get", id=result.succeeded[0]["content_id"])
    assert "<script>" not in content.html_content and content.word_count == 15
    assert result.credits_used == 1 and (await t.run("billing.balance")).credits == 99
    [log] = await _usage_rows(t)
    assert (log.operation_type, log.tokens_input, log.tokens_output, log.model_used) == (
        "content_generation",
        700,
        300,
        openai_stub.model,
    )
    request = openai_stub.chat_requests()[0]
    assert request.json["response_format"]["type"] == "json_schema"
    assert "trail running shoes" in request.json["messages"][-1]["content"]
    assert request.headers["Authorization"] == f"Bearer {openai_stub.api_key}"


async def test_malformed_output_is_retried_then_fails_cleanly(tenants, openai_stub):
    t = await tenants.create(credits=100)
    await _use_stub(t, openai_stub)
    openai_stub.chat(text_reply("not json"), json_reply({"title": "missing fields"}), text_reply("{broken"))
    with pytest.raises(Exception, match="no credits were charged") as err:
        await t.run("tasks.auto_generate_content", task_ids=[await _task(t)])
    assert err.value.code == "ai_output_invalid"
    assert len(openai_stub.chat_requests()) == 3
    async with t.db.transaction(t.owner) as s:
        assert (await s.scalars(select(Content))).all() == []
    assert (await t.run("billing.balance")).credits == 100 and await _usage_rows(t) == []


async def test_partial_batch_charges_only_what_succeeded(tenants, openai_stub):
    t = await tenants.create(credits=100)
    await _use_stub(t, openai_stub)
    first, second = await _task(t), await _task(t)
    openai_stub.chat(json_reply(ARTICLE), Reply(status=401, body={"error": {"message": "bad key"}}))
    result = await t.run("tasks.auto_generate_content", task_ids=[first, second])
    [done], [failed] = result.succeeded, result.failed  # calls run concurrently: either may fail
    assert {done["task_id"], int(failed.item.split()[1])} == {first, second}
    assert failed.code == "ai_provider_auth"
    assert result.credits_reserved == 24 and result.credits_used == 1
    assert (await t.run("billing.balance")).credits == 99


async def test_llm_clustering_and_ideas(tenants, openai_stub):
    t = await tenants.create(credits=100)
    await _use_stub(t, openai_stub)
    ids = await t.keywords("trail running shoes", "road running shoes", "marathon plan")
    openai_stub.chat(
        json_reply(
            {
                "clusters": [
                    {
                        "name": "Running Shoes",
                        "description": "Shoes",
                        "keywords": ["trail running shoes", "road running shoes"],
                    },
                    {
                        "name": "Marathon Training",
                        "description": "Plans",
                        "keywords": ["marathon plan", "invented keyword"],
                    },
                ]
            }
        )
    )
    clustered = await t.run("keywords.auto_cluster", keyword_ids=ids)
    assert (
        clustered.succeeded[0]["keywords_clustered"] == 3 and clustered.succeeded[0]["clusters_created"] == 2
    )
    clusters = {c.name: c for c in (await t.run("clusters.list")).results}
    assert clusters["Running Shoes"].keywords_count == 2

    openai_stub.chat(
        json_reply(
            {
                "ideas": [
                    {
                        "title": "Best Trail Shoes",
                        "description": "d",
                        "content_type": "guide",
                        "content_structure": "cluster_hub",
                        "target_keywords": ["trail running shoes"],
                        "estimated_word_count": 2000,
                    }
                ]
            }
        )
    )
    ideas = await t.run(
        "clusters.auto_generate_ideas", cluster_ids=[clusters["Running Shoes"].id], ideas_per_cluster=1
    )
    [idea] = (await t.run("ideas.list")).results
    assert idea.idea_title == "Best Trail Shoes" and idea.keyword_cluster_id == clusters["Running Shoes"].id
    assert ideas.credits_used == 5


async def test_images_through_openai_and_runware(tenants, openai_stub, runware_stub):
    t = await tenants.create(credits=100)
    await _use_stub(t, openai_stub)
    content = await t.run(
        "content.create",
        site_id=t.site_id,
        sector_id=t.sector_id,
        title="Shoes",
        html_content="<h1>Shoes</h1><h2>Grip</h2><p>text</p>",
    )
    openai_stub.chat(
        json_reply({"featured_prompt": "A trail runner at dawn", "in_article_prompts": ["Shoe sole"]})
    )
    prompts = await t.run("content.generate_image_prompts", content_ids=[content.id], max_in_article=1)
    featured, inline = prompts.succeeded[0]["image_ids"]

    await t.run("integrations.save", integration_type="image_generation", config={"provider": "openai"})
    made = await t.run("images.generate_images", image_ids=[featured])
    assert made.credits_used == 5 and openai_stub.requests_to("/images/generations")

    await t.run(
        "integrations.save",
        integration_type="runware",
        config={"api_key": runware_stub.api_key, "base_url": runware_stub.base_url},
    )
    await t.run("integrations.save", integration_type="image_generation", config={"provider": "runware"})
    await t.run("images.generate_images", image_ids=[inline])
    image = await t.run("images.get", id=inline)
    assert image.status == "generated" and image.image_url.startswith("http")
    assert (await t.run("billing.balance")).credits == 100 - 2 - 10


async def test_connection_checks(tenants, openai_stub):
    t = await tenants.create()
    await _use_stub(t, openai_stub)
    openai_stub.chat(text_reply("pong"))
    checked = await t.run("integrations.test_openai")
    assert checked.ok and checked.model == openai_stub.model
    with pytest.raises(Exception, match="rejected") as err:
        await t.run("integrations.test_openai", key="sk-wrong-key")
    assert "sk-wrong-key" not in str(err.value)
