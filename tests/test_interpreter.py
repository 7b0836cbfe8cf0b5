"""The offline interpreter: chat text -> action call, with no model, no database and no network.

The slash-grammar tests iterate the registry, so an action added later is covered without editing them.
"""

from __future__ import annotations

import json
import shlex
import types
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, EmailStr, Field, TypeAdapter
from pydantic.fields import FieldInfo

from agent.interpreter import Interpretation, help_text, interpret
from tools import load_actions
from tools.registry import Action, ActionInput, registry

load_actions()
ACTIONS = list(registry)
CONTEXT = ("site_id", "sector_id")


# --- sample values from field types ------------------------------------------------------------------


def _base(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _python_sample(annotation: Any) -> Any:
    """A valid Python value for a type: what a user would mean."""
    t = _base(annotation)
    if t is bytes:
        return "keywords.csv"
    if t is bool:
        return True
    if t is int:
        return 3
    if t is EmailStr:
        return "editor@example.com"
    if get_origin(t) is Literal:
        return get_args(t)[0]
    if isinstance(t, type) and issubclass(t, Enum):
        return next(iter(t)).value
    if get_origin(t) is list:
        item = _base(get_args(t)[0])
        return [1, 2] if item is int else [_python_sample(item)]
    if get_origin(t) is dict or t is dict:
        return {"model": "m"}
    if isinstance(t, type) and issubclass(t, BaseModel):
        return {n: _python_sample(f.annotation) for n, f in t.model_fields.items() if f.is_required()}
    return "sample text"


def _typed(value: Any) -> str:
    """How the value is typed after ``key=`` on a slash line."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return ",".join(map(str, value))
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _expected(info: FieldInfo, value: Any) -> Any:
    """What the interpreter should hand on: the value validated by the field type, JSON-shaped."""
    if _base(info.annotation) is bytes:
        return value  # the path; the caller reads the file
    adapter = TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)
    return adapter.dump_python(adapter.validate_python(value), mode="json")


def _required(act: Action) -> dict[str, FieldInfo]:
    return {n: f for n, f in act.input_model.model_fields.items() if f.is_required()}


def _to_fill(act: Action) -> dict[str, FieldInfo]:
    """Required fields, plus site and sector wherever they exist (auto_cluster needs a sector or ids)."""
    fields = act.input_model.model_fields
    return {n: f for n, f in fields.items() if f.is_required() or n in CONTEXT}


def _head(act: Action, *, prefix: str = "/igny8 ", underscores: bool = False) -> str:
    group, verb = act.name.split(".", 1)
    if not underscores:
        group, verb = group.replace("_", "-"), verb.replace("_", "-")
    return f"{prefix}{group} {verb}"


def _slash_line(act: Action, **form: Any) -> tuple[str, dict]:
    parts, expected = [_head(act, **form)], {}
    for name, info in _to_fill(act).items():
        value = _python_sample(info.annotation)
        parts.append(shlex.quote(f"{name}={_typed(value)}"))
        expected[name] = _expected(info, value)
    return " ".join(parts), expected


def _validates(act: Action, args: dict[str, Any]) -> None:
    """Interpreted arguments are what the action accepts (a file path becomes the file's bytes)."""
    ready = {
        k: (b"keyword\n" if _base(act.input_model.model_fields[k].annotation) is bytes else v)
        for k, v in args.items()
    }
    act.input_model.model_validate(ready)


# --- every registered action, by slash command ---------------------------------------------------------


@pytest.mark.parametrize("act", ACTIONS, ids=lambda a: a.name)
@pytest.mark.parametrize(
    "form",
    [
        {"prefix": "/igny8 "},
        {"prefix": "/"},
        {"prefix": "/igny8 ", "underscores": True},
        {"prefix": "igny8 "},
    ],
    ids=["igny8-hyphens", "bare-slash", "underscores", "no-slash"],
)
def test_every_action_parses_from_its_slash_form(act: Action, form: dict[str, Any]) -> None:
    line, expected = _slash_line(act, **form)
    result = interpret(line)
    assert result == Interpretation(act.name, expected, (), None), line
    _validates(act, result.args)


@pytest.mark.parametrize("act", ACTIONS, ids=lambda a: a.name)
def test_every_action_takes_its_required_values_positionally(act: Action) -> None:
    """``/igny8 keywords bulk-update-status 1,2 active``: required values in order, site/sector by key."""
    _, expected = _slash_line(act)
    values, keyed = [], []
    for name, info in _to_fill(act).items():
        value = _typed(_python_sample(info.annotation))
        if name in CONTEXT:
            keyed.append(f"{name}={value}")
        else:
            values.append(shlex.quote(value))
    positional_line = " ".join([_head(act), *values, *keyed])
    assert interpret(positional_line) == Interpretation(act.name, expected, (), None), positional_line


@pytest.mark.parametrize("act", [a for a in ACTIONS if _required(a)], ids=lambda a: a.name)
def test_every_action_asks_for_its_missing_required_fields(act: Action) -> None:
    group, verb = act.name.split(".", 1)
    result = interpret(f"/igny8 {group} {verb}")
    assert result.action == act.name
    assert result.missing == tuple(_required(act))
    assert result.reply is not None and "I need:" in result.reply
    for name in _required(act):
        assert f"({name}" in result.reply


@pytest.mark.parametrize("act", ACTIONS, ids=lambda a: a.name)
def test_help_covers_every_action(act: Action) -> None:
    group, verb = act.name.split(".", 1)
    assert verb.replace("_", "-") in help_text()
    assert act.summary in help_text(group)
    detail = help_text(f"{group} {verb}")
    assert act.summary in detail
    for name in act.input_model.model_fields:
        assert f"{name}=" in detail


# --- slash grammar details -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "action", "args"),
    [
        ("/igny8 keywords list status=active", "keywords.list", {"status": "active"}),
        ("/keywords list status=active", "keywords.list", {"status": "active"}),
        ("keywords list status=active", "keywords.list", {"status": "active"}),
        ("/igny8 keywords list site-id=3 volume-min=10", "keywords.list", {"site_id": 3, "volume_min": 10}),
        ("/igny8 keywords list site=3 sector=7", "keywords.list", {"site_id": 3, "sector_id": 7}),
        ("/igny8 keywords list site=acme", "keywords.list", {"site_name": "acme"}),
        ("/igny8 keywords list shoes", "keywords.list", {"search": "shoes"}),
        ("/igny8 keywords bulk-delete ids=1,2,3", "keywords.bulk_delete", {"ids": [1, 2, 3]}),
        ("/igny8 keywords bulk_delete 1-3", "keywords.bulk_delete", {"ids": [1, 2, 3]}),
        (
            "/igny8 keywords bulk-update-status 1,2 active",
            "keywords.bulk_update_status",
            {"ids": [1, 2], "status": "active"},
        ),
        ("/igny8 keywords auto-cluster ids=4,5", "keywords.auto_cluster", {"keyword_ids": [4, 5]}),
        ("/igny8 keywords get 5", "keywords.get", {"id": 5}),
        ("/igny8 keywords show 5", "keywords.get", {"id": 5}),
        ("/igny8 keywords show", "keywords.list", {}),
        ("/igny8 keywords ls", "keywords.list", {}),
        ("/igny8 keyword rm 5", "keywords.delete", {"id": 5}),
        ('/igny8 sites create name="Acme Blog"', "sites.create", {"name": "Acme Blog"}),
        ("/igny8 sites create name=\u201cAcme Blog\u201d", "sites.create", {"name": "Acme Blog"}),
        ("/igny8 sites create Acme Blog", "sites.create", {"name": "Acme Blog"}),
        ("/igny8 sectors create Running site=2", "sectors.create", {"name": "Running", "site_id": 2}),
        ("/igny8 sectors list is-active=no", "sectors.list", {"is_active": False}),
        (
            '/igny8 keywords create "trail shoes" site=1 sector=2',
            "keywords.create",
            {"keyword": "trail shoes", "site_id": 1, "sector_id": 2},
        ),
        (
            "/igny8 users create a@b.co role=editor with-api-key=yes",
            "users.create",
            {"email": "a@b.co", "role": "editor", "with_api_key": True},
        ),
        ("/igny8 billing usage period=this_month", "billing.usage", {"period": "this_month"}),
        ("/igny8 ideas list type=guide", "ideas.list", {"content_type": "guide"}),
        ("/igny8 images list content=4", "images.list", {"content_id": 4}),
        (
            "/igny8 clusters create name=Trail keywords=1,2 site=1 sector=2",
            "clusters.create",
            {"name": "Trail", "keyword_ids": [1, 2], "site_id": 1, "sector_id": 2},
        ),
        (
            "/igny8 content-maps set-clusters 3 12:supporting,13",
            "content_maps.set_clusters",
            {
                "content_id": 3,
                "clusters": [{"cluster_id": 12, "role": "supporting"}, {"cluster_id": 13, "role": "hub"}],
            },
        ),
        (
            "/igny8 prompts save clustering Group these keywords well",
            "prompts.save",
            {"prompt_type": "clustering", "prompt_value": "Group these keywords well"},
        ),
        (
            "/igny8 tasks bulk-update 3 4 status=completed",
            "tasks.bulk_update",
            {"ids": [3, 4], "status": "completed"},
        ),
    ],
)
def test_slash_lines(line: str, action: str, args: dict[str, Any]) -> None:
    assert interpret(line) == Interpretation(action, args, (), None)


@pytest.mark.parametrize(
    ("line", "action", "args"),
    [
        (
            "/igny8 keywords import file.csv site=1 sector=2",
            "keywords.import_csv",
            {"file": "file.csv", "site_id": 1, "sector_id": 2},
        ),
        (
            "/igny8 keywords import data/kw.csv site=acme sector=running",
            "keywords.import_csv",
            {"file": "data/kw.csv", "site_name": "acme", "sector_name": "running"},
        ),
        ("/igny8 cluster site=1 sector=2", "keywords.auto_cluster", {"site_id": 1, "sector_id": 2}),
        ("/igny8 cluster 1,2,3", "keywords.auto_cluster", {"keyword_ids": [1, 2, 3]}),
        ("/igny8 ideas 3,4", "clusters.auto_generate_ideas", {"cluster_ids": [3, 4]}),
        (
            "/igny8 ideas 3 ideas-per-cluster=5",
            "clusters.auto_generate_ideas",
            {"cluster_ids": [3], "ideas_per_cluster": 5},
        ),
        ("/igny8 write 1 2", "tasks.auto_generate_content", {"task_ids": [1, 2]}),
        ("/igny8 images 9", "images.generate_images", {"image_ids": [9]}),
        ("/igny8 credits", "billing.balance", {}),
        ("/igny8 balance", "billing.balance", {}),
        ("/igny8 whoami", "accounts.me", {}),
        ("/igny8 export status=active", "keywords.export_csv", {"status": "active"}),
        # A group and its verb win over a shortcut of the same word.
        ("/igny8 ideas list", "ideas.list", {}),
        ("/igny8 images list", "images.list", {}),
        # Plain English after the prefix still works.
        ("/igny8 cluster my keywords for sector 7", "keywords.auto_cluster", {"sector_id": 7}),
        ("/igny8 show keywords with volume over 1000", "keywords.list", {"volume_min": 1000}),
    ],
)
def test_shortcuts(line: str, action: str, args: dict[str, Any]) -> None:
    assert interpret(line) == Interpretation(action, args, (), None)


@pytest.mark.parametrize(
    "line", ["/igny8 help", "/igny8", "/igny8 ?", "help", "what can you do?", "hello", ""]
)
def test_help(line: str) -> None:
    result = interpret(line)
    assert result.action is None and result.reply == help_text()
    assert "keywords: " in result.reply and "/igny8 <group> <verb>" in result.reply


def test_help_on_a_topic() -> None:
    assert interpret("/igny8 help keywords").reply == help_text("keywords")
    assert interpret("help with clusters").reply == help_text("clusters")
    assert interpret("/igny8 keywords").reply == help_text("keywords")  # a group alone: its verbs
    detail = interpret("/igny8 help keywords import-csv").reply
    assert detail == help_text("keywords.import_csv") and "file=<file path>" in detail
    assert interpret("how do I import keywords?").reply == help_text("keywords.import_csv")
    assert help_text("cluster") == help_text("keywords auto-cluster")
    assert help_text("articles") == help_text("content")
    assert help_text("bogus").startswith("I have no help on \u201cbogus\u201d")


# --- plain English ------------------------------------------------------------------------------------------

PHRASES: list[tuple[str, str, dict[str, Any]]] = [
    # billing and account
    ("how many credits do I have?", "billing.balance", {}),
    ("what's my balance", "billing.balance", {}),
    ("check my credit balance", "billing.balance", {}),
    ("show transactions", "billing.transactions", {}),
    ("show refund transactions", "billing.transactions", {"transaction_type": "refund"}),
    ("how much did I spend this month?", "billing.usage", {"period": "this_month"}),
    ("show my AI usage for the last 30 days", "billing.usage", {"period": "last_30_days"}),
    ("add 500 credits", "billing.add_credits", {"credits": 500}),
    ("who am I", "accounts.me", {}),
    ("create an api key", "api_keys.create", {}),
    # keywords
    ("show my keywords", "keywords.list", {}),
    ("hi, show my keywords", "keywords.list", {}),
    ("list keywords with volume over 1000", "keywords.list", {"volume_min": 1000}),
    ("keywords with difficulty under 30", "keywords.list", {"difficulty_max": 30}),
    ("list keywords with status active", "keywords.list", {"status": "active"}),
    ("list commercial keywords", "keywords.list", {"intent": "commercial"}),
    (
        "list informational keywords with volume between 100 and 500",
        "keywords.list",
        {"intent": "informational", "volume_min": 100, "volume_max": 500},
    ),
    (
        "list keywords with volume over 1000 and difficulty under 30",
        "keywords.list",
        {"volume_min": 1000, "difficulty_max": 30},
    ),
    ("list keywords with more than 1,000 searches", "keywords.list", {"volume_min": 1000}),
    ("show keywords with volume over 5k", "keywords.list", {"volume_min": 5000}),
    ("top 10 keywords by volume", "keywords.list", {"page_size": 10, "ordering": "-volume"}),
    ("give me the 20 newest keywords", "keywords.list", {"page_size": 20, "ordering": "-created_at"}),
    ("show me 5 keywords", "keywords.list", {"page_size": 5}),
    ("list keywords sorted by difficulty", "keywords.list", {"ordering": "difficulty"}),
    ("find keywords containing running shoes", "keywords.list", {"search": "running shoes"}),
    ("search keywords for trail", "keywords.list", {"search": "trail"}),
    ("list keywords in cluster 5", "keywords.list", {"cluster_id": 5}),
    ("show keywords for site 3 sector 7", "keywords.list", {"site_id": 3, "sector_id": 7}),
    ("keywords list status=archived page=2", "keywords.list", {"status": "archived", "page": 2}),
    ("show keyword 12", "keywords.get", {"id": 12}),
    ("delete keyword 4", "keywords.delete", {"id": 4}),
    ("I need you to delete keyword 9", "keywords.delete", {"id": 9}),
    ("delete keywords 4, 5 and 6", "keywords.bulk_delete", {"ids": [4, 5, 6]}),
    ("remove keywords 10-12", "keywords.bulk_delete", {"ids": [10, 11, 12]}),
    ("mark keywords 1,2 as active", "keywords.bulk_update_status", {"ids": [1, 2], "status": "active"}),
    ("archive keywords 7 and 8", "keywords.bulk_update_status", {"ids": [7, 8], "status": "archived"}),
    ("set keyword 3 difficulty to 40", "keywords.update", {"id": 3, "difficulty": 40}),
    (
        "add keyword running shoes to site 1 sector 2",
        "keywords.create",
        {"keyword": "running shoes", "site_id": 1, "sector_id": 2},
    ),
    ("export keywords", "keywords.export_csv", {}),
    (
        "export keywords for site 1 with volume over 100",
        "keywords.export_csv",
        {"site_id": 1, "volume_min": 100},
    ),
    (
        "import keywords from var/kw.csv into site 1 sector 2",
        "keywords.import_csv",
        {"file": "var/kw.csv", "site_id": 1, "sector_id": 2},
    ),
    # clustering and clusters
    ("cluster my keywords for sector 7", "keywords.auto_cluster", {"sector_id": 7}),
    ("can you please cluster keywords 1, 2 and 3", "keywords.auto_cluster", {"keyword_ids": [1, 2, 3]}),
    ("group keywords 4 and 5 into clusters", "keywords.auto_cluster", {"keyword_ids": [4, 5]}),
    ("list clusters", "clusters.list", {}),
    ("what are my clusters", "clusters.list", {}),
    ("show keyword clusters for site 2", "clusters.list", {"site_id": 2}),
    ("show cluster 5", "clusters.get", {"id": 5}),
    ("delete cluster 5", "clusters.delete", {"id": 5}),
    (
        "create a cluster called Trail running with keywords 1,2,3 in site 1 sector 2",
        "clusters.create",
        {"name": "Trail running", "keyword_ids": [1, 2, 3], "site_id": 1, "sector_id": 2},
    ),
    # ideas
    ("generate ideas for clusters 3,4", "clusters.auto_generate_ideas", {"cluster_ids": [3, 4]}),
    (
        "come up with 5 ideas for cluster 3",
        "clusters.auto_generate_ideas",
        {"cluster_ids": [3], "ideas_per_cluster": 5},
    ),
    ("show my content ideas", "ideas.list", {}),
    ("list new ideas", "ideas.list", {"status": "new"}),
    ("delete idea 3", "ideas.delete", {"id": 3}),
    (
        "create an idea called Best trail shoes for cluster 3 in site 1 sector 2",
        "ideas.create",
        {"idea_title": "Best trail shoes", "keyword_cluster_id": 3, "site_id": 1, "sector_id": 2},
    ),
    # writer tasks
    ("queue ideas 1 and 2 for writing", "tasks.create_from_ideas", {"ids": [1, 2]}),
    ("turn ideas 4 and 5 into tasks", "tasks.create_from_ideas", {"ids": [4, 5]}),
    ("create tasks from ideas 1 and 2", "tasks.create_from_ideas", {"ids": [1, 2]}),
    ("do I have any tasks?", "tasks.list", {}),
    ("which tasks are queued?", "tasks.list", {"status": "queued"}),
    ("show page 2 of my tasks", "tasks.list", {"page": 2}),
    ("list article tasks for cluster 2", "tasks.list", {"content_type": "article", "cluster_id": 2}),
    ("write articles for tasks 1 and 2", "tasks.auto_generate_content", {"task_ids": [1, 2]}),
    ("write content for task 7", "tasks.auto_generate_content", {"task_ids": [7]}),
    ("set task 5 status to completed", "tasks.update", {"id": 5, "status": "completed"}),
    ("mark tasks 3,4 as completed", "tasks.bulk_update", {"ids": [3, 4], "status": "completed"}),
    ("delete tasks 8 and 9", "tasks.bulk_delete", {"ids": [8, 9]}),
    # content and images
    ("list published articles", "content.list", {"status": "published"}),
    ("show content 5", "content.get", {"id": 5}),
    ("delete article 5", "content.delete", {"id": 5}),
    ("generate image prompts for content 4", "content.generate_image_prompts", {"content_ids": [4]}),
    ("generate images for image 9", "images.generate_images", {"image_ids": [9]}),
    ("list images for content 4", "images.list", {"content_id": 4}),
    ("show failed images", "images.list", {"status": "failed"}),
    # sites, sectors, users, settings
    ("list my sites", "sites.list", {}),
    ("create a site called Acme Blog", "sites.create", {"name": "Acme Blog"}),
    ("create a site called \u201cJoe\u2019s Blog\u201d", "sites.create", {"name": "Joe's Blog"}),
    ("rename site 3 to Acme Shop", "sites.update", {"id": 3, "name": "Acme Shop"}),
    ("delete site 4", "sites.delete", {"id": 4}),
    ("deactivate site 4", "sites.update", {"id": 4, "is_active": False}),
    ("add a sector Running to site 2", "sectors.create", {"name": "Running", "site_id": 2}),
    ("list sectors of site 2", "sectors.list", {"site_id": 2}),
    ("list active sectors", "sectors.list", {"is_active": True}),
    ("activate sector 3", "sectors.update", {"id": 3, "is_active": True}),
    ("list users", "users.list", {}),
    ("add user bob@example.com as editor", "users.create", {"email": "bob@example.com", "role": "editor"}),
    ("grant user 5 access to site 2", "site_access.grant", {"user_id": 5, "site_id": 2}),
    ("revoke user 5 from site 2", "site_access.revoke", {"user_id": 5, "site_id": 2}),
    ("show prompts", "prompts.list", {}),
    ("list author profiles", "author_profiles.list", {}),
    ("list strategies", "strategies.list", {}),
]


def test_there_are_at_least_forty_distinct_phrasings() -> None:
    assert len({text.lower() for text, _, _ in PHRASES}) >= 40


@pytest.mark.parametrize(("text", "action", "args"), PHRASES, ids=[p[0] for p in PHRASES])
def test_plain_english(text: str, action: str, args: dict[str, Any]) -> None:
    result = interpret(text)
    assert (result.action, result.args, result.missing, result.reply) == (action, args, (), None)
    _validates(registry.get(action), result.args)


def test_sites_and_sectors_by_name_are_returned_unresolved() -> None:
    result = interpret("cluster my keywords for site acme")
    assert result.action == "keywords.auto_cluster"
    assert result.args == {"site_name": "acme"}
    assert "site_id" not in result.args
    result = interpret("show keywords for site acme in sector running")
    assert result == Interpretation(
        "keywords.list", {"site_name": "acme", "sector_name": "running"}, (), None
    )
    result = interpret('import keywords from kw.csv for site "Acme Blog" sector Running')
    assert result == Interpretation(
        "keywords.import_csv",
        {"file": "kw.csv", "site_name": "Acme Blog", "sector_name": "Running"},
        (),
        None,
    )


def test_interpretations_are_deterministic() -> None:
    for text, _, _ in PHRASES:
        assert interpret(text) == interpret(text)


# --- missing arguments and defaults ---------------------------------------------------------------------


def test_missing_arguments_are_asked_for_in_plain_words() -> None:
    result = interpret("/igny8 keywords import file.csv")
    assert result.action == "keywords.import_csv"
    assert result.args == {"file": "file.csv"}
    assert result.missing == ("site_id", "sector_id")
    assert result.reply == (
        "To import keywords from a CSV file into a site sector I need: the site (site_id) "
        "and the sector (sector_id). Which ones?"
    )


@pytest.mark.parametrize(
    ("text", "action", "missing", "words"),
    [
        ("import keywords", "keywords.import_csv", ("site_id", "sector_id", "file"), ["the CSV file (file)"]),
        ("create a site", "sites.create", ("name",), ["the name (name)"]),
        ("delete keywords", "keywords.delete", ("id",), ["which keyword (id)"]),
        ("generate ideas", "clusters.auto_generate_ideas", ("cluster_ids",), ["the clusters (cluster_ids)"]),
        ("write articles", "tasks.auto_generate_content", ("task_ids",), ["the tasks (task_ids)"]),
        (
            "mark keywords 1,2",
            "keywords.bulk_update_status",
            ("status",),
            ["one of pending, active, archived"],
        ),
        ("/igny8 images generate", "images.generate_images", ("image_ids",), ["(image_ids)"]),
        (
            "create a cluster called Trail running in sector 7",
            "clusters.create",
            ("site_id",),
            ["To create a cluster I need: the site (site_id). Which one?"],
        ),
    ],
)
def test_missing_argument_questions(
    text: str, action: str, missing: tuple[str, ...], words: list[str]
) -> None:
    result = interpret(text)
    assert (result.action, result.missing) == (action, missing)
    assert result.reply is not None and "I need:" in result.reply
    for w in words:
        assert w in result.reply


def test_auto_cluster_needs_keyword_ids_or_a_sector() -> None:
    result = interpret("cluster my keywords")
    assert result.action == "keywords.auto_cluster" and result.missing == ("sector_id",)
    assert "the keywords (keyword_ids) or the sector (sector_id)" in (result.reply or "")
    assert interpret("cluster keywords 1 2").missing == ()


def test_defaults_fill_required_site_and_sector() -> None:
    ctx = {"site_id": 3, "sector_id": 7}
    assert interpret("import keywords from kw.csv", defaults=ctx) == Interpretation(
        "keywords.import_csv", {"file": "kw.csv", "site_id": 3, "sector_id": 7}, (), None
    )
    assert interpret("/igny8 keywords import kw.csv", defaults=ctx).args == {
        "file": "kw.csv",
        "site_id": 3,
        "sector_id": 7,
    }
    assert interpret("cluster my keywords", defaults=ctx) == Interpretation(
        "keywords.auto_cluster", {"sector_id": 7, "site_id": 3}, (), None
    )
    assert interpret("add keyword trail shoes", defaults={"site_id": "3", "sector_id": "7"}).args == {
        "keyword": "trail shoes",
        "site_id": 3,
        "sector_id": 7,
    }


def test_defaults_do_not_fill_optional_filters() -> None:
    assert interpret("show my keywords", defaults={"site_id": 3, "sector_id": 7}).args == {}
    assert interpret("cluster keywords 1 2", defaults={"site_id": 3, "sector_id": 7}).args == {
        "keyword_ids": [1, 2]
    }


def test_the_message_wins_over_defaults() -> None:
    ctx = {"site_id": 3, "sector_id": 7}
    result = interpret("/igny8 keywords import kw.csv site=3 sector=9", defaults=ctx)
    assert result.args == {"file": "kw.csv", "site_id": 3, "sector_id": 9}
    # Another site: the context's sector belongs to site 3, so it is asked for, not guessed.
    result = interpret("import keywords from kw.csv into site 4", defaults=ctx)
    assert result.args == {"file": "kw.csv", "site_id": 4}
    assert result.missing == ("sector_id",)
    result = interpret("cluster my keywords for site acme", defaults=ctx)
    assert result.args == {"site_name": "acme"} and result.missing == ("sector_id",)
    # The same site as the context: its sector still applies.
    assert interpret("import keywords from kw.csv into site 3", defaults=ctx).args["sector_id"] == 7
    # A sector given by name blocks the default sector id.
    result = interpret("import keywords from kw.csv sector=Running", defaults=ctx)
    assert result.args == {"file": "kw.csv", "sector_name": "Running", "site_id": 3} and result.missing == ()


# --- tenancy, validation, and what cannot be understood ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "/igny8 keywords bulk-delete ids=1,2,3 account=5",
        "/igny8 keywords bulk-delete 1,2,3 account-id=5",
        "/igny8 keywords bulk-delete 1,2,3 tenant_id=5",
        "delete keywords 1, 2 and 3 account=5",
        "delete keywords 1, 2 and 3 for account 5",
    ],
)
def test_account_ids_are_never_passed(text: str) -> None:
    result = interpret(text)
    assert result.action == "keywords.bulk_delete" and result.args == {"ids": [1, 2, 3]}
    assert result.reply is not None and "ignored" in result.reply


def test_account_ids_in_defaults_and_admin_actions_are_ignored() -> None:
    result = interpret("add 50 credits", defaults={"account_id": 9, "site_id": 1})
    assert result.args == {"credits": 50}
    result = interpret("/igny8 billing add-credits 50 account_id=9")
    assert result.action == "billing.add_credits" and result.args == {"credits": 50}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("/igny8 keywords list foo=1", ["`foo`", "volume_min", "status", "site="]),
        ("/igny8 keywords list status=active colour=red", ["`colour`", "volume_max"]),
        ("list keywords foo=3", ["`foo`", "difficulty_min"]),
        ("/igny8 sites create name=Acme owner=me", ["`owner`", "domain", "wp_url"]),
    ],
)
def test_unknown_keys_are_named_with_the_valid_ones(text: str, names: list[str]) -> None:
    result = interpret(text)
    assert result.action is None and result.reply is not None
    assert "is not an option of" in result.reply
    for name in names:
        assert name in result.reply


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/igny8 keywords list status=bogus", ["status=bogus", "pending, active, archived"]),
        ("/igny8 keywords list page=x", ["page=x", "integer"]),
        ("/igny8 keywords bulk-delete ids=0", ["ids=0"]),
        ("/igny8 sites create name='Joe", ["quote"]),
        ("/igny8 keywords frobnicate", ["frobnicate", "bulk-delete", "import-csv"]),
        ("/igny8 keywords bulk-delete 1 2 banana", ["banana"]),
        ("/igny8 keywords list status=active status=archived", ["twice"]),
        ("show keywords 1 and 2", ["one keyword at a time"]),
        ("generate images for content 4", ["content 4", "image_ids"]),
        ("show keywords 5 to 3", ["5-3"]),
    ],
)
def test_problems_are_explained(text: str, words: list[str]) -> None:
    result = interpret(text)
    assert result.action is None and result.reply is not None
    for word in words:
        assert word in result.reply


@pytest.mark.parametrize(
    "text", ["asdf qwerty", "blorp", "1 2 3", "/igny8 frobnicate the widgets", "delete everything"]
)
def test_gibberish_is_said_plainly(text: str) -> None:
    result = interpret(text)
    assert result == Interpretation(None, {}, (), result.reply)
    assert result.reply is not None and "/igny8 help" in result.reply
    if not text.startswith("/"):
        said, example = f"\u201c{text}\u201d", "\u201ccluster my keywords\u201d"
        assert result.reply == f"I didn't understand {said}. Try `/igny8 help`, or e.g. {example}."


def test_generate_without_an_object_asks_what() -> None:
    result = interpret("generate")
    assert result.action is None and "Generate what?" in (result.reply or "")


@pytest.mark.parametrize(
    "text", ["", "   ", "/", "=", "a=b", "/igny8 ''", "keywords=", "\u00a6", "/igny8 keywords list =", "?!"]
)
def test_odd_input_never_raises(text: str) -> None:
    assert isinstance(interpret(text), Interpretation)


# --- modules that are not registered yet ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "module"),
    [
        ("/igny8 link 5", "linker"),
        ("link my content", "linker"),
        ("/igny8 optimize 3", "optimizer"),
        ("optimize article 5", "optimizer"),
        ("/igny8 publish 3", "publisher"),
        ("publish article 3", "publisher"),
    ],
)
def test_unavailable_modules_say_so(text: str, module: str) -> None:
    result = interpret(text)
    assert result.action is None
    assert result.reply is not None and module in result.reply and "isn't available yet" in result.reply


class _ContentIdsInput(ActionInput):
    content_ids: list[int] = Field(min_length=1)


async def _noop(ctx: Any, params: _ContentIdsInput) -> None:
    return None


@contextmanager
def _registered(*names: str) -> Iterator[None]:
    """Temporarily register actions, as a future module would."""
    for name in names:
        registry.register(Action(name, name.split(".")[0], f"Test {name}", _ContentIdsInput, _noop))
    try:
        yield
    finally:
        for name in names:
            registry._actions.pop(name)


def test_shortcuts_work_once_their_module_is_registered() -> None:
    with _registered("linker.process", "linker.batch_process", "publisher.publish"):
        assert interpret("/igny8 link 5") == Interpretation("linker.process", {"content_ids": [5]}, (), None)
        assert interpret("/igny8 link 5 6").action == "linker.batch_process"
        assert interpret("/igny8 linker process 5").action == "linker.process"
        assert interpret("publish article 3") == Interpretation(
            "publisher.publish", {"content_ids": [3]}, (), None
        )
        assert interpret("/igny8 publish").missing == ("content_ids",)
        assert "linker: batch-process, process" in help_text()
    assert interpret("/igny8 link 5").action is None  # gone again: nothing cached
