"""System module: integration secrets encrypted and never echoed, prompt overrides, profiles."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.exceptions import PermissionDenied, ValidationFailed
from storage.models import IntegrationSettings, Role
from tools.ai.prompts import load_prompt_set
from tools.registry import invoke


async def test_secrets_are_encrypted_at_rest_and_masked(tenants):
    t = await tenants.create()
    saved = await t.run(
        "integrations.save",
        integration_type="openai",
        config={"api_key": "sk-live-123456", "model": "gpt-4o-mini"},
    )
    assert saved.config == {"api_key": "********", "model": "gpt-4o-mini"}
    assert "sk-live" not in saved.model_dump_json()
    async with t.db.transaction(t.owner) as s:
        stored = await s.scalar(select(IntegrationSettings))
    assert stored.config["api_key"].startswith("enc:v1:") and "sk-live" not in stored.config["api_key"]

    kept = await t.run(
        "integrations.save", integration_type="openai", config={"api_key": "********", "model": "gpt-4.1"}
    )
    async with t.db.transaction(t.owner) as s:
        again = await s.scalar(select(IntegrationSettings))
    assert again.config["api_key"] == stored.config["api_key"] and kept.config["model"] == "gpt-4.1"
    assert (await t.run("integrations.get", integration_type="openai")).config["api_key"] == "********"


async def test_only_admins_touch_integrations(tenants):
    t = await tenants.create()
    editor = await t.user(Role.EDITOR, (t.site_id,))
    with pytest.raises(PermissionDenied):
        await t.run("integrations.get", as_=editor, integration_type="openai")


async def test_prompt_override_validated_used_and_reset(tenants):
    t = await tenants.create()
    with pytest.raises(ValidationFailed, match=r"\$budget") as err:
        await t.run(
            "prompts.save", prompt_type="auto_cluster", prompt_value="Cluster $keywords within $budget"
        )
    assert err.value.errors[0].field == "prompt_value"
    with pytest.raises(ValidationFailed, match="prompt_type"):
        await t.run("prompts.save", prompt_type="nope", prompt_value="x")

    saved = await t.run("prompts.save", prompt_type="auto_cluster", prompt_value="Group for $site: $keywords")
    assert saved.is_custom
    async with t.db.transaction(t.owner) as s:
        prompts = await load_prompt_set(s)
    _, user = prompts.render("auto_cluster", {"site": "Acme", "keywords": "a, b", "sector": "x"})
    assert user == "Group for Acme: a, b"

    reset = await t.run("prompts.reset_to_default", prompt_type="auto_cluster")
    assert not reset.is_custom and "$keywords" in reset.prompt_value
    listed = await t.run("prompts.list")
    assert {p.prompt_type for p in listed} >= {"auto_cluster", "generate_content", "system"}


async def test_author_profile_and_strategy_feed_the_system_prompt(tenants):
    t = await tenants.create()
    await t.run(
        "author_profiles.create", name="Ana", description="Running coach", tone="friendly", language="de"
    )
    await t.run(
        "strategies.create", name="Evergreen", description="Prefer long-lived guides", sector_id=t.sector_id
    )
    async with t.db.transaction(t.owner) as s:
        prompts = await load_prompt_set(s, t.sector_id)
    system, _ = prompts.render("auto_cluster", {"keywords": "", "site": "", "sector": ""})
    assert "German" in system and "friendly" in system and "Running coach" in system
    assert "Prefer long-lived guides" in system
    other = await tenants.create()
    with pytest.raises(ValidationFailed, match="sector_id"):
        await other.run("strategies.create", name="Sneaky", sector_id=t.sector_id)


async def test_editors_see_account_wide_strategies_and_those_of_their_sites(tenants) -> None:
    t = await tenants.create()
    other_sector = await t.sector("Elsewhere", site_id=await t.site("Other blog"))
    await t.run("strategies.create", name="Everywhere")
    await t.run("strategies.create", name="Ours", sector_id=t.sector_id)
    await t.run("strategies.create", name="Theirs", sector_id=other_sector)
    editor = await t.user(Role.EDITOR, (t.site_id,))
    seen = await invoke("strategies.list", {}, db=t.db, tenant=editor)
    assert {s.name for s in seen.results} == {"Everywhere", "Ours"} and seen.count == 2
    assert {s.name for s in (await t.run("strategies.list")).results} == {"Everywhere", "Ours", "Theirs"}
