"""Every action, called by tenant B with tenant A's ids, answers as if those ids did not exist.

``ARGS`` (tests/tenancy_support.py) gives valid arguments for each registered action naming B's
own rows; this module swaps one reference at a time (``id``, ``site_id``, ``cluster_ids``,
``user_id``…) for A's and checks, through ``assert_hidden``:

* the answer is NotFound, or a ValidationFailed saying "not found" (list actions: no rows; bulk
  actions: A's ids reported as ``not_found``) — never any of A's data;
* it is the very same answer (numbers aside) as for an id that exists nowhere, so nothing tells
  "another tenant's" from "missing";

and then that every row of A's account is unchanged, and that the same call with B's own ids works
(so the refusal is about A's id, not a malformed call).

A new action fails ``test_every_action_has_a_cross_tenant_case`` until ``ARGS`` has it, and a new
id-like input field fails it until it is mapped in ``REFERENCES`` (or ``NOT_TENANT_REFERENCES``).
"""

from __future__ import annotations

from typing import Any

import pytest

from storage.db import Database
from storage.exceptions import Igny8Error, NotFound, PermissionDenied, ValidationFailed
from storage.models import Role
from tests.factories import TenantFactory
from tests.tenancy_support import (
    AI_RUNS,
    ARGS,
    BULK,
    DESTRUCTIVE,
    GHOST,
    LISTS,
    NEEDS_CONFIGURATION,
    NO_OP,
    OTHER_WORDING,
    Side,
    assert_hidden,
    attempt,
    build_side,
    call,
    references,
    snapshot,
    swapped,
    text_of,
    unique,
    unmapped_references,
)
from tools.accounts import authenticate_api_key
from tools.registry import registry


def _owner_may_run(action: str) -> bool:
    return Role.OWNER in registry.get(action).roles


TAKES_IDS = sorted(n for n in ARGS if n in registry and references(registry.get(n)) and _owner_may_run(n))
NO_IDS = sorted(n for n in ARGS if n in registry and not references(registry.get(n)) and _owner_may_run(n))
NOT_FOR_OWNERS = sorted(n for n in ARGS if n in registry and not _owner_may_run(n))


@pytest.fixture(scope="module")
async def sides(db: Database) -> tuple[Side, Side]:
    """(A, B): A's data must never leak or change; B tries."""
    factory = TenantFactory(db)
    return await build_side(factory, "alpha"), await build_side(factory, "bravo")


def test_every_action_has_a_cross_tenant_case() -> None:
    registered = set(registry.names())
    assert registered - set(ARGS) == set(), "add the new action(s) to ARGS in tests/tenancy_support.py"
    assert set(ARGS) - registered == set(), "these actions no longer exist; drop them from ARGS"
    unmapped = [field for action in registry for field in unmapped_references(action)]
    assert unmapped == [], "map these in REFERENCES (or NOT_TENANT_REFERENCES) in tests/tenancy_support.py"
    special = LISTS | BULK | set(NO_OP) | {a for a, _ in OTHER_WORDING}
    assert special <= set(TAKES_IDS), special - set(TAKES_IDS)
    assert set(ARGS) >= (DESTRUCTIVE | AI_RUNS)


@pytest.mark.parametrize("action", TAKES_IDS)
async def test_another_tenants_ids_look_like_missing_ones(
    db: Database, sides: tuple[Side, Side], action: str
) -> None:
    a, b = sides
    before = await snapshot(db, a.account)
    for field, kind in references(registry.get(action)).items():
        got = await attempt(b.tenant, action, swapped(action, b, field, a.one(kind)))
        ghost = await attempt(b.tenant, action, swapped(action, b, field, GHOST))
        assert_hidden(action, field, got, ghost, a, a.one(kind))
    assert await snapshot(db, a.account) == before, f"{action} changed tenant A's rows"
    if action not in DESTRUCTIVE | AI_RUNS:
        mine = await call(b.tenant, action, confirmed=True, **ARGS[action](b))
        assert a.tag not in text_of(mine)
        if action in LISTS:
            assert b.tag in text_of(mine), "B's own list should show B's rows"


@pytest.mark.parametrize("action", NO_IDS)
async def test_actions_without_ids_answer_with_the_callers_data_only(
    db: Database, sides: tuple[Side, Side], action: str
) -> None:
    a, b = sides
    before = await snapshot(db, a.account)
    out = await attempt(b.tenant, action, ARGS[action](b))
    assert a.tag not in text_of(out)
    assert await snapshot(db, a.account) == before
    if action in NEEDS_CONFIGURATION:
        assert isinstance(out, ValidationFailed) and NEEDS_CONFIGURATION[action] in out.message, out
        return
    assert not isinstance(out, Igny8Error), out
    if action == "accounts.me":
        assert out.account_id == b.account
    if action == "api_keys.create":
        assert (await authenticate_api_key(db, out.api_key)).account_id == b.account
    if action in ("sites.list", "users.list", "author_profiles.list", "strategies.list"):
        assert b.tag in text_of(out)


@pytest.mark.parametrize("action", NOT_FOR_OWNERS)
async def test_actions_owners_may_not_run_refuse_another_tenants_owner(
    db: Database, sides: tuple[Side, Side], action: str
) -> None:
    a, b = sides
    before = await snapshot(db, a.account)
    with pytest.raises(PermissionDenied):
        await call(b.tenant, action, confirmed=True, **ARGS[action](a))
    assert await snapshot(db, a.account) == before


@pytest.mark.parametrize(
    ("action", "kind", "extra"),
    [
        ("keywords.bulk_delete", "Keyword", {}),
        ("keywords.bulk_update_status", "Keyword", {"status": "archived"}),
        ("tasks.bulk_delete", "Task", {}),
        ("tasks.bulk_update", "Task", {"status": "failed"}),
    ],
)
async def test_bulk_actions_touch_own_rows_and_report_others_as_not_found(
    db: Database, sides: tuple[Side, Side], action: str, kind: str, extra: dict[str, Any]
) -> None:
    a, b = sides
    where = {"site_id": b.site, "sector_id": b.sector}
    make = ("keywords.create", "keyword") if kind == "Keyword" else ("tasks.create", "title")
    mine = [(await call(b.tenant, make[0], **where, **{make[1]: unique("bulk")})).id for _ in range(2)]
    before = await snapshot(db, a.account)
    out = await call(b.tenant, action, confirmed=True, ids=[*mine, *a.ids[kind]], **extra)
    assert (out.requested, out.affected, out.not_found) == (
        len(mine) + len(a.ids[kind]),
        2,
        sorted(a.ids[kind]),
    )
    assert await snapshot(db, a.account) == before


async def test_another_accounts_editor_sees_nothing_of_a(db: Database, sides: tuple[Side, Side]) -> None:
    """Spot check that B's narrower roles get the same answers as B's owner."""
    a, b = sides
    editor = await b.tenant.user(Role.EDITOR, (b.site,))
    for action, args in [
        ("keywords.get", {"id": a.one("Keyword")}),
        ("keywords.update", {"id": a.one("Keyword"), "volume": 1}),
        ("keywords.create", {"site_id": a.site, "sector_id": a.sector, "keyword": "x"}),
        ("tasks.get", {"id": a.one("Task")}),
        ("content_maps.set_clusters", {"content_id": b.one("Content"), "clusters": [a.one("Cluster")]}),
    ]:
        got = await attempt(b.tenant, action, args, as_=editor)
        assert isinstance(got, NotFound) or (isinstance(got, Igny8Error) and "not found" in got.message), (
            action,
            got,
        )
    page = await call(b.tenant, "keywords.list", as_=editor)
    assert a.tag not in text_of(page) and b.tag in text_of(page)
