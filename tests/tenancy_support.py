"""What the isolation tests share: sites with one of everything, valid arguments for every action,
and the rule for what an answer about rows the caller cannot see must look like.

Every text a ``Side``'s rows carry (names, titles, words, prompts, emails) contains its ``tag``, so
a test can tell at a glance whether any of another tenant's (or another site's) data shows up.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select, union_all

from storage.db import Database
from storage.exceptions import Igny8Error, NotFound, ValidationFailed
from storage.models import Account as AccountRow
from storage.models import (
    AccountScoped,
    Base,
    Cluster,
    Role,
    SiteBlueprint,
    SiteBlueprintTaxonomy,
    cluster_keywords,
)
from storage.tenancy import TenantContext
from tests.factories import Tenant, TenantFactory
from tools.registry import Action, invoke

GHOST = 2_000_000_000  # an id no row has (and small enough for 32-bit columns)


async def call(
    t: Tenant, action: str, /, *, as_: TenantContext | None = None, confirmed: bool = False, **args: Any
) -> Any:
    """``invoke`` for a tenant's owner (or ``as_``)."""
    return await invoke(action, args, db=t.db, tenant=as_ or t.owner, confirmed=confirmed)


async def attempt(t: Tenant, action: str, args: dict[str, Any], as_: TenantContext | None = None) -> Any:
    """The answer, or the error a caller would be shown."""
    try:
        return await call(t, action, as_=as_, confirmed=True, **args)
    except Igny8Error as exc:
        return exc


# --- sides: one site with one of everything -----------------------------------------------------


@dataclass
class Side:
    """A site of a tenant and the ids of one of each thing in it, by model name."""

    tenant: Tenant
    tag: str
    site: int
    sector: int
    ids: dict[str, list[int]]

    def one(self, kind: str) -> int:
        return self.ids[kind][0]

    @property
    def account(self) -> int:
        return self.tenant.account_id


async def populate(t: Tenant, site: int, sector: int, label: str) -> Side:
    """Tag the site and sector and fill them with one of each thing the actions work on."""
    tag = f"{label}{uuid.uuid4().hex[:6]}"
    await call(t, "sites.update", id=site, name=f"{tag} site")
    await call(t, "sectors.update", id=sector, name=f"{tag} sector")
    # The third keyword stays out of every cluster, so auto-clustering has something to do.
    where = {"site_id": site, "sector_id": sector}
    keywords = [
        (await call(t, "keywords.create", **where, keyword=f"{tag} {word}", volume=10)).id
        for word in ("one", "two", "loose")
    ]
    cluster = await call(t, "clusters.create", **where, name=f"{tag} cluster", keyword_ids=keywords[:2])
    idea = await call(t, "ideas.create", **where, idea_title=f"{tag} idea", keyword_cluster_id=cluster.id)
    task = await call(t, "tasks.create", **where, title=f"{tag} task", cluster_id=cluster.id, idea_id=idea.id)
    spare_task = await call(t, "tasks.create", **where, title=f"{tag} spare task")
    content = await call(
        t, "content.create", task_id=task.id, title=f"{tag} content", html_content=f"<h2>{tag}</h2><p>x</p>"
    )
    image = await call(t, "images.create", content_id=content.id, prompt=f"{tag} image prompt")
    strategy = await call(t, "strategies.create", name=f"{tag} strategy", sector_id=sector)
    profile = await call(t, "author_profiles.create", name=f"{tag} author")
    user = await call(t, "users.create", email=f"{tag}-editor@example.com", role=Role.EDITOR, site_ids=[site])
    grant = await call(t, "site_access.grant", user_id=user.id, site_id=site)
    async with t.db.transaction(TenantContext.system()) as s:  # no action creates blueprints yet
        blueprint = SiteBlueprint(**where, name=f"{tag} blueprint")
        s.add(blueprint)
        await s.flush()
        taxonomy = SiteBlueprintTaxonomy(
            **where, site_blueprint_id=blueprint.id, name=f"{tag} topic", slug=f"{tag}-topic"
        )
        s.add(taxonomy)
        await s.flush()
        taxonomy_id = taxonomy.id
    ids = {
        "Site": [site],
        "Sector": [sector],
        "Keyword": keywords,
        "Cluster": [cluster.id],
        "ContentIdea": [idea.id],
        "Task": [task.id, spare_task.id],
        "Content": [content.id],
        "Image": [image.id],
        "Strategy": [strategy.id],
        "AuthorProfile": [profile.id],
        "User": [user.id],
        "SiteUserAccess": [grant.id],
        "SiteBlueprintTaxonomy": [taxonomy_id],
    }
    return Side(t, tag, site, sector, ids)


async def build_side(factory: TenantFactory, label: str) -> Side:
    """A new tenant whose main site is populated."""
    t = await factory.create()
    return await populate(t, t.site_id, t.sector_id, label)


# --- valid arguments for every action -----------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


Args = Callable[[Side], dict[str, Any]]

# Valid arguments for every registered action, naming only the given side's own rows.
ARGS: dict[str, Args] = {
    # auth
    "accounts.me": lambda s: {},
    "api_keys.create": lambda s: {},
    "sites.list": lambda s: {},
    "sites.get": lambda s: {"id": s.site},
    "sites.create": lambda s: {"name": unique("site")},
    "sites.update": lambda s: {"id": s.site, "domain": "example.com"},
    "sites.delete": lambda s: {"id": s.site},
    "sectors.list": lambda s: {},
    "sectors.get": lambda s: {"id": s.sector},
    "sectors.create": lambda s: {"site_id": s.site, "name": unique("sector"), "is_active": False},
    "sectors.update": lambda s: {"id": s.sector, "name": f"{s.tag} sector"},
    "sectors.delete": lambda s: {"id": s.sector},
    "users.list": lambda s: {},
    "users.create": lambda s: {"email": f"{uuid.uuid4().hex[:10]}@example.com", "site_ids": [s.site]},
    "site_access.grant": lambda s: {"user_id": s.one("User"), "site_id": s.site},
    "site_access.revoke": lambda s: {"user_id": s.one("User"), "site_id": s.site},
    # planner
    "keywords.list": lambda s: {},
    "keywords.export_csv": lambda s: {},
    "keywords.get": lambda s: {"id": s.one("Keyword")},
    "keywords.create": lambda s: {"site_id": s.site, "sector_id": s.sector, "keyword": unique("kw")},
    "keywords.update": lambda s: {"id": s.one("Keyword"), "volume": 7},
    "keywords.delete": lambda s: {"id": s.one("Keyword")},
    "keywords.bulk_delete": lambda s: {"ids": [s.one("Keyword")]},
    "keywords.bulk_update_status": lambda s: {"ids": [s.one("Keyword")], "status": "active"},
    "keywords.import_csv": lambda s: {
        "site_id": s.site,
        "sector_id": s.sector,
        "file": b"keyword\nimported\n",
    },
    "keywords.auto_cluster": lambda s: {"site_id": s.site, "sector_id": s.sector},
    "clusters.list": lambda s: {},
    "clusters.get": lambda s: {"id": s.one("Cluster")},
    "clusters.create": lambda s: {"site_id": s.site, "sector_id": s.sector, "name": unique("cluster")},
    "clusters.update": lambda s: {"id": s.one("Cluster"), "description": "changed"},
    "clusters.delete": lambda s: {"id": s.one("Cluster")},
    "clusters.auto_generate_ideas": lambda s: {"cluster_ids": [s.one("Cluster")]},
    "ideas.list": lambda s: {},
    "ideas.get": lambda s: {"id": s.one("ContentIdea")},
    "ideas.create": lambda s: {"site_id": s.site, "sector_id": s.sector, "idea_title": unique("idea")},
    "ideas.update": lambda s: {"id": s.one("ContentIdea"), "description": "changed"},
    "ideas.delete": lambda s: {"id": s.one("ContentIdea")},
    # writer
    "tasks.list": lambda s: {},
    "tasks.get": lambda s: {"id": s.one("Task")},
    "tasks.create": lambda s: {"site_id": s.site, "sector_id": s.sector, "title": unique("task")},
    "tasks.update": lambda s: {"id": s.one("Task"), "description": "changed"},
    "tasks.delete": lambda s: {"id": s.one("Task")},
    "tasks.bulk_delete": lambda s: {"ids": [s.one("Task")]},
    "tasks.bulk_update": lambda s: {"ids": [s.one("Task")], "status": "in_progress"},
    "tasks.create_from_ideas": lambda s: {"ids": [s.one("ContentIdea")]},
    "tasks.auto_generate_content": lambda s: {"task_ids": [s.ids["Task"][1]]},
    "content.list": lambda s: {},
    "content.get": lambda s: {"id": s.one("Content")},
    "content.create": lambda s: {"site_id": s.site, "sector_id": s.sector, "title": unique("content")},
    "content.update": lambda s: {"id": s.one("Content"), "meta_title": "changed"},
    "content.delete": lambda s: {"id": s.one("Content")},
    "content.generate_image_prompts": lambda s: {"content_ids": [s.one("Content")]},
    "content_maps.list": lambda s: {"content_id": s.one("Content")},
    "content_maps.set_clusters": lambda s: {"content_id": s.one("Content"), "clusters": [s.one("Cluster")]},
    "content_maps.set_taxonomies": lambda s: {
        "content_id": s.one("Content"),
        "taxonomy_ids": [s.one("SiteBlueprintTaxonomy")],
    },
    "content_maps.set_attributes": lambda s: {"content_id": s.one("Content"), "attributes": ["colour=red"]},
    "images.list": lambda s: {},
    "images.get": lambda s: {"id": s.one("Image")},
    "images.create": lambda s: {"site_id": s.site, "sector_id": s.sector, "prompt": "a picture"},
    "images.update": lambda s: {"id": s.one("Image"), "position": 2},
    "images.delete": lambda s: {"id": s.one("Image")},
    "images.generate_images": lambda s: {"image_ids": [s.one("Image")]},
    # system
    "strategies.list": lambda s: {},
    "strategies.create": lambda s: {"name": unique("strategy"), "sector_id": s.sector},
    "strategies.update": lambda s: {"id": s.one("Strategy"), "description": "changed"},
    "strategies.delete": lambda s: {"id": s.one("Strategy")},
    "author_profiles.list": lambda s: {},
    "author_profiles.create": lambda s: {"name": unique("author")},
    "author_profiles.update": lambda s: {"id": s.one("AuthorProfile"), "tone": "dry"},
    "author_profiles.delete": lambda s: {"id": s.one("AuthorProfile")},
    "prompts.list": lambda s: {},
    "prompts.get": lambda s: {"prompt_type": "auto_cluster"},
    "prompts.save": lambda s: {"prompt_type": "auto_cluster", "prompt_value": "Cluster {keywords}"},
    "prompts.reset_to_default": lambda s: {"prompt_type": "auto_cluster"},
    "integrations.get": lambda s: {"integration_type": "openai"},
    "integrations.save": lambda s: {
        "integration_type": "openai",
        "config": {"model": "m"},
        "is_active": False,
    },
    # Without a saved server these refuse before any network call, which is all the tests want.
    "integrations.test_openai": lambda s: {},
    "integrations.test_runware": lambda s: {},
    "integrations.generate_image": lambda s: {"prompt": "a test picture", "width": 128, "height": 128},
    # billing
    "billing.balance": lambda s: {},
    "billing.transactions": lambda s: {},
    "billing.usage": lambda s: {"period": "all"},
    "billing.add_credits": lambda s: {"credits": 5, "account_id": s.account},
}

# Actions that delete the shared fixtures, or run AI (credits, files; tests/test_ai_pipeline.py covers
# those on the offline provider): tests that run every action for real leave these out.
DESTRUCTIVE = {name for name in ARGS if name.endswith(("delete", "bulk_delete"))}
AI_RUNS = {
    "keywords.auto_cluster",
    "clusters.auto_generate_ideas",
    "tasks.auto_generate_content",
    "content.generate_image_prompts",
    "images.generate_images",
}


# Actions that, with ``ARGS``, refuse for want of configuration (and would otherwise call out).
NEEDS_CONFIGURATION = {
    "integrations.test_openai": "no OpenAI-compatible server is configured",
    "integrations.test_runware": "no Runware API key",
}


# --- what answers about rows the caller cannot see look like ------------------------------------

# Input field -> the model its ids point at. ``id``/``ids`` point at the action's own module.
REFERENCES = {
    "site_id": "Site",
    "site_ids": "Site",
    "sector_id": "Sector",
    "cluster_id": "Cluster",
    "cluster_ids": "Cluster",
    "keyword_cluster_id": "Cluster",
    "clusters": "Cluster",
    "keyword_ids": "Keyword",
    "idea_id": "ContentIdea",
    "task_id": "Task",
    "task_ids": "Task",
    "content_id": "Content",
    "content_ids": "Content",
    "image_ids": "Image",
    "taxonomy_ids": "SiteBlueprintTaxonomy",
    "user_id": "User",
}
NOT_TENANT_REFERENCES = {
    "industry_id": "the shared industry catalogue",
    "industry_sector_id": "the shared industry catalogue",
    "wp_post_id": "a post id on the customer's WordPress, not a row of ours",
    "account_id": "billing.add_credits only: developers credit any account by design (role-gated)",
}
MODULE_OBJECTS = {
    "keywords": "Keyword",
    "clusters": "Cluster",
    "ideas": "ContentIdea",
    "sites": "Site",
    "sectors": "Sector",
    "tasks": "Task",
    "content": "Content",
    "images": "Image",
    "strategies": "Strategy",
    "author_profiles": "AuthorProfile",
}
OWN_ID_OVERRIDES = {"tasks.create_from_ideas": "ContentIdea"}

# Answer with rows: a filter on unseen ids gives none.
LISTS = {
    "keywords.list",
    "keywords.export_csv",
    "clusters.list",
    "ideas.list",
    "sectors.list",
    "tasks.list",
    "content.list",
    "images.list",
}
# Report ids they cannot see as ``not_found`` and touch nothing else.
BULK = {"keywords.bulk_delete", "keywords.bulk_update_status", "tasks.bulk_delete", "tasks.bulk_update"}
# Answer "nothing done" for ids they cannot see, as for ids that exist nowhere.
NO_OP = {
    "tasks.create_from_ideas": "ideas it cannot see are listed as not_found; nothing is queued",
}
# Refusals worded other than "not found", each the same as for an id that exists nowhere.
OTHER_WORDING = {
    ("keywords.auto_cluster", "site_id"): "nothing to process",  # the sector's keywords on that site
    ("keywords.auto_cluster", "sector_id"): "nothing to process",
    ("keywords.import_csv", "site_id"): "does not belong to site",  # the sector is not on that site
}


def references(act: Action) -> dict[str, str]:
    """The action's input fields that name rows, each with the model it names."""
    refs: dict[str, str] = {}
    for name in act.input_model.model_fields:
        if name in ("id", "ids") and act.name.split(".")[0] in MODULE_OBJECTS:
            refs[name] = OWN_ID_OVERRIDES.get(act.name) or MODULE_OBJECTS[act.name.split(".")[0]]
        elif name in REFERENCES:
            refs[name] = REFERENCES[name]
    return refs


def unmapped_references(act: Action) -> list[str]:
    """Input fields that look like references but are in neither table (a new kind of id)."""
    module_id = act.name.split(".")[0] in MODULE_OBJECTS
    return [
        f"{act.name}.{name}"
        for name in act.input_model.model_fields
        if (name in ("id", "ids") and not module_id)
        or (name.endswith(("_id", "_ids")) and name not in REFERENCES and name not in NOT_TENANT_REFERENCES)
    ]


def swapped(action: str, base: Side, field: str, value: int) -> dict[str, Any]:
    """``base``'s valid arguments with one reference replaced."""
    as_list = field.endswith("_ids") or field in ("ids", "clusters")
    return {**ARGS[action](base), field: [value] if as_list else value}


def text_of(result: Any) -> str:
    """Everything the caller sees of an answer or an error."""
    if isinstance(result, Igny8Error):
        return f"{result.message} {result.details}"
    return result.model_dump_json() if hasattr(result, "model_dump_json") else repr(result)


def outcome(result: Any) -> tuple[str, str]:
    """The answer with numbers blanked, so one about a hidden id and one about a ghost id compare."""
    return type(result).__name__, re.sub(r"\d+", "N", text_of(result))


def assert_hidden(action: str, field: str, got: Any, ghost: Any, hidden: Side, hidden_id: int) -> None:
    """``got`` answers a call naming ``hidden``'s row as if the row did not exist at all."""
    where = f"{action}({field}={hidden_id} of {hidden.tag}) -> {got!r}"
    assert hidden.tag not in text_of(got), f"{where}: shows the hidden side's data"
    assert outcome(got) == outcome(ghost), f"{where}: differs from a missing id: {ghost!r}"
    if action in LISTS:
        assert getattr(got, "count", getattr(got, "rows", None)) == 0, where
    elif action in BULK:
        assert (got.affected, got.not_found) == (0, [hidden_id]), where
    elif action in NO_OP:
        assert not isinstance(got, Igny8Error), where
    elif (action, field) in OTHER_WORDING:
        assert isinstance(got, ValidationFailed) and OTHER_WORDING[action, field] in got.message, where
    else:
        assert isinstance(got, NotFound) or (
            isinstance(got, ValidationFailed) and "not found" in got.message
        ), where


# --- snapshots ----------------------------------------------------------------------------------


async def snapshot(db: Database, account_id: int, site_id: int | None = None) -> dict[str, Any]:
    """A fingerprint of every row an account owns (or, with ``site_id``, that one site's).

    Per table: how many rows, the sum of their ids and the latest ``updated_at`` (which every ORM
    write, bulk UPDATE included, moves), so any insert, delete or update shows as a changed table;
    plus the cluster-keyword links. One UNION query, cheap enough to take around every call.
    """
    per_table = []
    for mapper in sorted(Base.registry.mappers, key=lambda m: m.class_.__name__):
        model = mapper.class_
        if not (issubclass(model, AccountScoped) or model is AccountRow):
            continue
        where = [(model.id if model is AccountRow else model.account_id) == account_id]
        if site_id is not None and hasattr(model, "site_id"):
            where.append(model.site_id == site_id)
        per_table.append(
            select(
                literal(model.__name__),
                func.count(model.id),
                func.coalesce(func.sum(model.id), 0),
                func.max(model.updated_at),
            ).where(*where)
        )
    links = (
        select(cluster_keywords.c.cluster_id, cluster_keywords.c.keyword_id)
        .join(Cluster, Cluster.id == cluster_keywords.c.cluster_id)
        .where(Cluster.account_id == account_id)
        .order_by(cluster_keywords.c.cluster_id, cluster_keywords.c.keyword_id)
    )
    async with db.session(TenantContext.system()) as session:
        tables = {
            row[0]: (int(row[1]), int(row[2]), row[3]) for row in await session.execute(union_all(*per_table))
        }
        return {**tables, "cluster_keywords": (await session.execute(links)).all()}
