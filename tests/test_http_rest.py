"""The REST surface over real HTTP: every action route, the envelope, status codes, arguments from
path, query, JSON and multipart, confirmation, pagination URLs, streaming, limits and errors."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs
from yarl import URL

from bots.http.app import RateLimit, create_app
from bots.http.rest import SEED_PENDING, ActionRoute, action_routes, pending_routes
from storage.db import Database
from storage.models import Role
from storage.settings import Settings
from tests.factories import Tenant, TenantFactory
from tests.http_support import (
    access_token,
    api_key,
    bearer,
    client_for,
    developer,
    request_for,
    send,
)
from tests.tenancy_support import ARGS, DESTRUCTIVE, GHOST, NEEDS_CONFIGURATION, Side, build_side
from tools.registry import registry


@pytest.fixture
async def http(db: Database) -> AsyncIterator[TestClient]:
    async with client_for(db) as client:
        yield client


ROUTES = {r.action.name: r for r in action_routes()}
# Deletes each get a fresh side, in an order where none removes another's target first.
DELETE_ORDER = sorted(n for n in ROUTES if n in DESTRUCTIVE)
SMOKE = sorted(n for n in ROUTES if n not in DESTRUCTIVE)


@pytest.fixture(scope="module")
async def side(db: Database) -> Side:
    return await build_side(TenantFactory(db), "http")


async def caller(client: TestClient, db: Database, side: Side, route: ActionRoute) -> dict[str, str]:
    """The owner's API key, or a developer's token for the platform-admin actions owners may not run."""
    if Role.OWNER in route.action.roles:
        return api_key(side.tenant.api_key)
    return bearer(access_token(client.app, await developer(db, side.account)))


async def run_route(client: TestClient, db: Database, side: Side, name: str) -> Any:
    route = ROUTES[name]
    method, path, kwargs = request_for(route, ARGS[name](side))
    if route.action.confirm:
        kwargs.setdefault("params", []).append(("confirm", "true"))
    return await send(client, method, path, headers=await caller(client, db, side, route), **kwargs)


# --- every route ------------------------------------------------------------------------------------


def test_every_routed_action_is_covered_here() -> None:
    assert {a.name for a in registry if a.route} == set(SMOKE) | set(DELETE_ORDER)
    assert set(ROUTES) <= set(ARGS)


@pytest.mark.parametrize("name", SMOKE)
async def test_route_answers_with_the_envelope(db: Database, http: TestClient, side: Side, name: str) -> None:
    route = ROUTES[name]
    reply = await run_route(http, db, side, name)
    if name in NEEDS_CONFIGURATION:
        assert reply.status == 400 and NEEDS_CONFIGURATION[name] in reply.error["message"], reply.body
        return
    assert reply.status == route.success_status, reply.body
    if route.action.streams:
        assert reply.headers["Content-Type"].startswith(route.action.streams)
        return
    assert reply.body["success"] is True and "data" in reply.body


@pytest.mark.parametrize("name", DELETE_ORDER)
async def test_delete_routes(db: Database, http: TestClient, name: str) -> None:
    own = await build_side(TenantFactory(db), "del")
    reply = await run_route(http, db, own, name)
    assert reply.status == 200, reply.body
    assert reply.data["affected"] >= 1


@pytest.mark.parametrize("name", sorted(ROUTES))
async def test_route_names_the_offending_field(db: Database, http: TestClient, side: Side, name: str) -> None:
    route = ROUTES[name]
    args = {**ARGS[name](side), "not_a_field": "1"}
    method, path, kwargs = request_for(route, args)
    reply = await send(http, method, path, headers=await caller(http, db, side, route), **kwargs)
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "validation_error"
    assert "not_a_field" in reply.fields()


@pytest.mark.parametrize("name", sorted(n for n, r in ROUTES.items() if r.path_params))
async def test_bad_path_values_name_the_parameter(
    db: Database, http: TestClient, side: Side, name: str
) -> None:
    route = ROUTES[name]
    args = ARGS[name](side)
    param = route.path_params[0]
    method, path, kwargs = request_for(route, {**args, param: "not-an-id"})
    reply = await send(http, method, path, headers=await caller(http, db, side, route), **kwargs)
    assert reply.status == 400 and param in reply.fields(), reply.body


async def test_put_routes_also_take_patch(db: Database, http: TestClient, side: Side) -> None:
    route = ROUTES["keywords.update"]
    assert route.methods == ("PUT", "PATCH")
    method, path, kwargs = request_for(route, {"id": side.one("Keyword"), "volume": 4321}, method="PATCH")
    reply = await send(http, method, path, headers=api_key(side.tenant.api_key), **kwargs)
    assert reply.status == 200 and reply.data["volume"] == 4321
    assert reply.data["keyword"].startswith(side.tag)  # untouched fields stay


# --- who may call -----------------------------------------------------------------------------------


async def test_without_credentials_401(http: TestClient) -> None:
    for method, path in [("GET", "/api/v1/planner/keywords/"), ("POST", "/api/v1/auth/sites/")]:
        reply = await send(http, method, path, json={} if method == "POST" else None)
        assert reply.status == 401 and reply.error["code"] == "not_authenticated"
        assert "Bearer" in reply.headers["WWW-Authenticate"]
    reply = await send(http, "GET", "/api/v1/planner/keywords/", headers=api_key("igny8_nope"))
    assert reply.status == 401


async def test_viewer_may_read_but_not_write_403(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    viewer = await t.run(
        "users.create", email="v@example.com", role=Role.VIEWER, site_ids=[t.site_id], with_api_key=True
    )
    headers = api_key(viewer.api_key)
    assert (await send(http, "GET", "/api/v1/planner/keywords/", headers=headers)).status == 200
    body = {"site_id": t.site_id, "sector_id": t.sector_id, "keyword": "nope"}
    reply = await send(http, "POST", "/api/v1/planner/keywords/", json=body, headers=headers)
    assert reply.status == 403 and reply.error["code"] == "permission_denied"
    # refused before the input is looked at: a viewer learns nothing about how to write
    reply = await send(http, "POST", "/api/v1/planner/keywords/", json={"bogus": 1}, headers=headers)
    assert reply.status == 403


async def test_another_tenants_ids_404_over_http(db: Database, http: TestClient, side: Side) -> None:
    other = await build_side(TenantFactory(db), "other")
    headers = api_key(side.tenant.api_key)
    for name, kind in [
        ("keywords.get", "Keyword"),
        ("clusters.get", "Cluster"),
        ("ideas.get", "ContentIdea"),
        ("tasks.get", "Task"),
        ("content.get", "Content"),
        ("images.get", "Image"),
        ("sites.get", "Site"),
        ("sectors.get", "Sector"),
        ("keywords.update", "Keyword"),
        ("keywords.delete", "Keyword"),
    ]:
        route = ROUTES[name]
        args = {**ARGS[name](side), "id": other.one(kind)}
        method, path, kwargs = request_for(route, args)
        theirs = await send(http, method, path, headers=headers, **kwargs)
        ghost = await send(http, *request_for(route, {**args, "id": GHOST})[:2], headers=headers, **kwargs)
        assert theirs.status == 404 == ghost.status, (name, theirs.body)
        assert other.tag not in str(theirs.body)
        assert theirs.error["code"] == ghost.error["code"] == "not_found"


# --- confirmation, credits, limits --------------------------------------------------------------------


async def test_confirmation_flow_409_then_confirm(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    ids = await t.keywords("one", "two", "three")
    headers = api_key(t.api_key)
    path = "/api/v1/planner/keywords/bulk_delete/"
    asked = await send(http, "POST", path, json={"ids": ids[:1]}, headers=headers)
    assert asked.status == 409 and asked.error["code"] == "confirmation_required"
    assert asked.error["details"]["action"] == "keywords.bulk_delete"
    assert asked.error["details"]["arguments"] == {"ids": ids[:1]}
    assert (await t.run("keywords.list")).count == 3, "nothing happens before the yes"
    in_body = await send(http, "POST", path, json={"ids": ids[:1], "confirm": True}, headers=headers)
    assert in_body.status == 200 and in_body.data["affected"] == 1
    in_query = await send(
        http, "POST", path, params={"confirm": "true"}, json={"ids": ids[1:2]}, headers=headers
    )
    assert in_query.status == 200 and in_query.data["affected"] == 1
    delete_site = await send(http, "DELETE", f"/api/v1/auth/sites/{t.site_id}/", headers=headers)
    assert delete_site.status == 409


async def test_insufficient_credits_402(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create(credits=0)
    ids = await t.keywords("running shoes", "trail shoes")
    body = {"site_id": t.site_id, "sector_id": t.sector_id, "keyword_ids": ids}
    reply = await send(
        http, "POST", "/api/v1/planner/keywords/auto_cluster/", json=body, headers=api_key(t.api_key)
    )
    assert reply.status == 402 and reply.error["code"] == "insufficient_credits", reply.body
    assert reply.error["details"]["balance"] == 0


async def test_oversized_bodies_413(db: Database, tenants: TenantFactory) -> None:
    t = await tenants.create()
    async with client_for(db, settings=Settings(max_upload_bytes=2048)) as client:
        big = b"keyword\n" + b"x" * 4096
        form = request_for(
            ROUTES["keywords.import_csv"], {"site_id": t.site_id, "sector_id": t.sector_id, "file": big}
        )[2]
        path = "/api/v1/planner/keywords/import_csv/"
        declared = await send(client, "POST", path, headers=api_key(t.api_key), **form)
        assert declared.status == 413 and declared.error["code"] == "payload_too_large"

        async def chunks() -> Any:  # no Content-Length: the limit applies while reading
            for _ in range(8):
                yield b'{"keyword": "' + b"y" * 1000

        chunked = await send(
            client, "POST", "/api/v1/planner/keywords/", data=chunks(), headers=api_key(t.api_key)
        )
        assert chunked.status == 413 and chunked.error["code"] == "payload_too_large"


async def test_write_requests_are_rate_limited_429(db: Database, tenants: TenantFactory) -> None:
    t = await tenants.create()
    async with client_for(db, write_limit=RateLimit(rate=0.01, burst=2)) as client:
        headers = api_key(t.api_key)
        body = {"site_id": t.site_id, "sector_id": t.sector_id}
        statuses = [
            (
                await send(
                    client,
                    "POST",
                    "/api/v1/planner/keywords/",
                    json={**body, "keyword": f"k{i}"},
                    headers=headers,
                )
            )
            for i in range(3)
        ]
        assert [r.status for r in statuses] == [201, 201, 429]
        assert statuses[2].error["code"] == "rate_limited" and int(statuses[2].headers["Retry-After"]) >= 1
        assert (await send(client, "GET", "/api/v1/planner/keywords/", headers=headers)).status == 200


# --- arguments and answers ----------------------------------------------------------------------------


async def test_csv_multipart_import_and_streamed_export(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    headers = api_key(t.api_key)
    rows = "Keyword,Search Volume,KD\nrunning shoes,2200,40\ntrail shoes,900,30\nbad row,lots,1\n"
    args = {"site_id": t.site_id, "sector_id": t.sector_id, "file": rows.encode()}
    method, path, kwargs = request_for(ROUTES["keywords.import_csv"], args)
    imported = await send(http, method, path, headers=headers, **kwargs)
    assert imported.status == 200 and imported.data["imported"] == 2 and imported.data["errors_count"] == 1
    exported = await send(
        http, "GET", "/api/v1/planner/keywords/export_csv/", params={"ordering": "-volume"}, headers=headers
    )
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="keywords.csv"'
    assert exported.headers.get("Transfer-Encoding") == "chunked"
    table = list(csv.DictReader(io.StringIO(exported.body)))
    assert [(r["keyword"], r["volume"]) for r in table] == [("running shoes", "2200"), ("trail shoes", "900")]
    refused = await send(
        http, "GET", "/api/v1/planner/keywords/export_csv/", params={"ordering": "nope"}, headers=headers
    )
    assert refused.status == 400 and refused.fields() == {"ordering"}, "errors before the first row stay JSON"


async def test_pagination_links_are_absolute_urls(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    await t.keywords(*(f"kw {i}" for i in range(5)), volume=10)
    headers = api_key(t.api_key)
    params = {"page_size": "2", "sector_id": str(t.sector_id), "ordering": "keyword"}
    first = await send(http, "GET", "/api/v1/planner/keywords/", params=params, headers=headers)
    assert set(first.data) == {"count", "next", "previous", "results"}
    assert first.data["count"] == 5 and first.data["previous"] is None
    next_url = first.data["next"]
    assert next_url.startswith("http://") and "page=2" in next_url and "page_size=2" in next_url
    assert f"sector_id={t.sector_id}" in next_url
    second = await send(http, "GET", URL(next_url).path_qs, headers=headers)
    assert [r["keyword"] for r in second.data["results"]] == ["kw 2", "kw 3"]
    assert "page=1" in second.data["previous"] and "page=3" in second.data["next"]
    last = await send(http, "GET", URL(second.data["next"]).path_qs, headers=headers)
    assert last.data["next"] is None and len(last.data["results"]) == 1


PROXIED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "api.example.com",
    "X-Forwarded-For": "203.0.113.9",
}
KEYWORDS_PATH = "/api/v1/planner/keywords/"


async def test_pagination_links_follow_a_trusted_proxy(db: Database, tenants: TenantFactory) -> None:
    t = await tenants.create()
    await t.keywords("one", "two", "three")
    params = {"page_size": "1", "sector_id": str(t.sector_id)}
    headers = {**api_key(t.api_key), **PROXIED}
    async with client_for(db) as behind_proxy:  # the test client calls from 127.0.0.1, trusted by default
        with capture_logs() as logs:
            page = await send(behind_proxy, "GET", KEYWORDS_PATH, params=params, headers=headers)
    assert page.data["next"].startswith("https://api.example.com/api/v1/planner/keywords/?")
    assert [e["remote"] for e in logs if e["event"] == "request"] == ["203.0.113.9"]
    async with client_for(db, settings=Settings(forwarded_allow_ips="10.0.0.1")) as direct:
        page = await send(direct, "GET", KEYWORDS_PATH, params=params, headers=headers)
        assert page.data["next"].startswith(str(direct.make_url(KEYWORDS_PATH)))
    spoofed = {**headers, "X-Forwarded-Host": "evil.example/path?x=", "X-Forwarded-Proto": "javascript"}
    async with client_for(db) as behind_proxy:
        page = await send(behind_proxy, "GET", KEYWORDS_PATH, params=params, headers=spoofed)
        assert page.data["next"].startswith(str(behind_proxy.make_url(KEYWORDS_PATH)))


async def test_query_strings_are_coerced_by_the_input_model(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    await t.keywords("low", volume=5)
    await t.keywords("high", volume=500, difficulty=70)
    headers = api_key(t.api_key)
    got = await send(
        http,
        "GET",
        "/api/v1/planner/keywords/",
        params={"volume_min": "100", "site_id": "", "search": "hi"},
        headers=headers,
    )
    assert [r["keyword"] for r in got.data["results"]] == ["high"]
    bad = await send(http, "GET", "/api/v1/planner/keywords/", params={"volume_min": "lots"}, headers=headers)
    assert bad.status == 400 and bad.fields() == {"volume_min"}
    twice = await send(
        http, "GET", "/api/v1/planner/keywords/", params=[("page", "1"), ("page", "2")], headers=headers
    )
    assert twice.status == 400 and twice.fields() == {"page"}


async def test_list_arguments_from_forms_are_split(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    ids = await t.keywords("a", "b", "c")
    form = {"ids": f"{ids[0]},{ids[1]}", "status": "archived"}
    reply = await send(
        http, "POST", "/api/v1/planner/keywords/bulk_update_status/", data=form, headers=api_key(t.api_key)
    )
    assert reply.status == 200 and reply.data["affected"] == 2


async def test_body_mistakes_are_named(http: TestClient, tenants: TenantFactory) -> None:
    t = await tenants.create()
    (kw,) = await t.keywords("solo")
    headers = api_key(t.api_key)
    path = f"/api/v1/planner/keywords/{kw}/"
    clash = await send(http, "PUT", path, json={"id": kw + 1, "volume": 1}, headers=headers)
    assert clash.status == 400 and clash.fields() == {"id"}
    not_json = await send(
        http, "PUT", path, data=b"{nope", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status == 400 and not_json.fields() == {"body"}
    a_list = await send(http, "PUT", path, json=[1], headers=headers)
    assert a_list.status == 400 and a_list.fields() == {"body"}
    in_query = await send(http, "PUT", path, params={"volume": "3"}, json={}, headers=headers)
    assert in_query.status == 400 and in_query.fields() == {"volume"}


async def test_seed_modules_not_built_yet_answer_501(http: TestClient, side: Side) -> None:
    pending = pending_routes()
    assert {p.module for p in pending} >= {"linker", "optimizer", "publisher", "site-builder", "automation"}
    assert len(pending) == len(SEED_PENDING), "no registered action covers these yet"
    for p in pending:
        path = p.full_path.replace("{id}", "1").replace("{site_id}", "1").replace("{task_id}", "abc")
        reply = await send(http, p.method, path, json={}, headers=api_key(side.tenant.api_key))
        assert reply.status == 501 and reply.error["code"] == "not_implemented", (p, reply.body)
        assert p.module in reply.error["message"]


def test_pending_routes_drop_what_an_action_now_serves() -> None:
    routes = action_routes()
    served = [p for p in SEED_PENDING if p.path == "linker/process/"]
    fake = ActionRoute(registry.get("keywords.list"), "/api/v1/linker/process/", ("POST",))
    assert served and served[0] not in pending_routes([*routes, fake])


# --- errors, ids, logs, ops ---------------------------------------------------------------------------


async def test_unexpected_errors_500_with_a_logged_id(db: Database, side: Side) -> None:
    app = create_app(db)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaboom with a secret inside")

    app.router.add_get("/api/v1/test/boom/", boom)
    async with TestClient(TestServer(app)) as client:
        with capture_logs() as logs:
            reply = await send(client, "GET", "/api/v1/test/boom/", headers=api_key(side.tenant.api_key))
    assert reply.status == 500 and reply.error["code"] == "internal_error"
    error_id = reply.error["details"]["error_id"]
    assert error_id in reply.error["message"] and "kaboom" not in str(reply.body)
    assert any(e.get("error_id") == error_id and e["event"] == "unhandled_error" for e in logs)


async def test_access_log_has_request_ids_and_never_credentials(http: TestClient, side: Side) -> None:
    key = side.tenant.api_key
    with capture_logs() as logs:
        reply = await send(
            http,
            "GET",
            "/api/v1/planner/keywords/",
            params={"search": "x"},
            headers={**api_key(key), "X-Request-ID": "req-123"},
        )
        fresh = await send(http, "GET", "/healthz")
    assert reply.status == 200 and reply.headers["X-Request-ID"] == "req-123"
    assert len(fresh.headers["X-Request-ID"]) == 32
    lines = [e for e in logs if e["event"] == "request"]
    assert {"req-123", fresh.headers["X-Request-ID"]} <= {e["request_id"] for e in lines}
    mine = next(e for e in lines if e["request_id"] == "req-123")
    assert (
        mine["status"] == 200
        and mine["account_id"] == side.account
        and mine["path"] == "/api/v1/planner/keywords/"
    )
    assert key not in str(logs) and key[:12] not in str(logs)


async def test_health_readiness_and_metrics(http: TestClient, side: Side) -> None:
    assert (await send(http, "GET", "/healthz")).data == {"status": "ok"}
    ready = await send(http, "GET", "/readyz")
    assert ready.status == 200 and ready.data["checks"] == {"database": "ok"}
    await send(
        http, "GET", f"/api/v1/planner/keywords/{side.one('Keyword')}/", headers=api_key(side.tenant.api_key)
    )
    metrics = await send(http, "GET", "/metrics")
    assert metrics.status == 200
    assert 'route="/api/v1/planner/keywords/{id}/"' in metrics.body
    assert "igny8_http_request_duration_seconds_bucket" in metrics.body


def _sample(body: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_metrics_count_ai_calls_credits_and_jobs_as_the_ledger_does(
    http: TestClient, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    ids = await t.keywords("running shoes", "trail running shoes", "road running shoes")
    before = (await send(http, "GET", "/metrics")).body
    body = {"site_id": t.site_id, "sector_id": t.sector_id, "keyword_ids": ids}
    run = await send(
        http, "POST", "/api/v1/planner/keywords/auto_cluster/", json=body, headers=api_key(t.api_key)
    )
    assert run.status == 200, run.body
    after = (await send(http, "GET", "/metrics")).body

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    charged = run.data["credits_used"]
    assert charged > 0
    assert grew("igny8_credits_spent_total", operation="clustering") == charged
    assert grew("igny8_ai_calls_total", function="auto_cluster", outcome="ok") == 1
    assert grew("igny8_jobs_total", action="keywords.auto_cluster", outcome="ok") == 1
    assert _sample(after, "igny8_jobs_running", action="keywords.auto_cluster") == 0


async def test_concurrent_requests_of_two_tenants_stay_apart(
    http: TestClient, db: Database, side: Side
) -> None:
    other: Tenant = await TenantFactory(db).create()
    await other.keywords("theirs only")

    async def listing(key: str) -> str:
        return str((await send(http, "GET", "/api/v1/planner/keywords/", headers=api_key(key))).data)

    answers = await asyncio.gather(*(listing(k) for k in [side.tenant.api_key, other.api_key] * 10))
    assert all("theirs only" not in a for a in answers[0::2])
    assert all(side.tag not in a and "theirs only" in a for a in answers[1::2])


async def test_unknown_industry_is_a_field_error_not_a_server_error(tenants):
    from storage.exceptions import ValidationFailed

    t = await tenants.create()
    with pytest.raises(ValidationFailed, match="industry_id"):
        await t.run("sites.create", name="x", industry_id=999_999)
