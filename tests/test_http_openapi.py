"""The OpenAPI document: valid 3.1, complete (every routed action, every 501 seed path), consistent
with what the server answers (a bounded schemathesis run over the GET operations: no 5xx, responses
match their schemas), and the HTML reference page."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import schemathesis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bots.http.openapi import build_spec
from bots.http.rest import action_routes, pending_routes
from storage.db import Database
from tests.factories import TenantFactory
from tests.http_support import bearer, client_for, send
from tools.registry import registry


@pytest.fixture
async def http(db: Database) -> AsyncIterator[TestClient]:
    async with client_for(db) as client:
        yield client


SCHEMATHESIS_EXAMPLES = 12


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_spec()


def test_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    assert "$defs" not in str(spec), "every nested schema lives in components/schemas"


def test_every_routed_action_is_in_the_spec(spec: dict[str, Any]) -> None:
    for route in action_routes():
        for method in route.methods:
            op = spec["paths"][route.path][method.lower()]
            assert op["summary"] == route.action.summary
            assert str(route.success_status) in op["responses"]
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == set(
                route.path_params
            )
    op_ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(op_ids) == len(set(op_ids))
    assert sum(1 for a in registry if a.route) == sum(1 for r in action_routes())


def test_parameters_and_bodies_come_from_the_input_models(spec: dict[str, Any]) -> None:
    listing = spec["paths"]["/api/v1/planner/keywords/"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert {"page", "page_size", "search", "ordering", "site_id", "volume_min"} <= set(params)
    assert params["page_size"]["schema"]["maximum"] == 500
    page = spec["components"]["schemas"]["Page_KeywordOut_"]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    create = spec["paths"]["/api/v1/planner/keywords/"]["post"]["requestBody"]["content"]["application/json"]
    assert {"site_id", "sector_id", "keyword"} <= set(create["schema"]["required"])
    upload = spec["paths"]["/api/v1/planner/keywords/import_csv/"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    update = spec["paths"]["/api/v1/planner/keywords/{id}/"]["put"]["requestBody"]["content"][
        "application/json"
    ]
    assert "id" not in update["schema"]["properties"], "path parameters are not repeated in the body"
    bulk_delete = spec["paths"]["/api/v1/planner/keywords/bulk_delete/"]["post"]
    assert "confirm" in bulk_delete["requestBody"]["content"]["application/json"]["schema"]["properties"]
    export = spec["paths"]["/api/v1/planner/keywords/export_csv/"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"text/csv"}
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader", "apiKeyAuthorization"}
    assert spec["paths"]["/api/v1/auth/token/"]["post"]["security"] == []


# Served but not ours to describe: the page and its files, the spec itself, and the OpenAI-compatible
# façade, whose contract is OpenAI's API reference.
NOT_IN_SPEC = ("/static", "/api/v1/openapi.json", "/api/v1/docs", "/v1/")


async def test_every_served_route_is_documented(http: TestClient, spec: dict[str, Any]) -> None:
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in http.app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "OPTIONS")
    }
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    missing = [(m, p) for m, p in served - documented if p != "/" and not p.startswith(NOT_IN_SPEC)]
    assert missing == []
    turn = spec["paths"]["/api/v1/chat"]["post"]
    assert set(turn["responses"]["200"]["content"]) == {"text/event-stream"}


def test_pending_seed_paths_are_documented_as_501(spec: dict[str, Any]) -> None:
    for pending in pending_routes():
        op = spec["paths"][pending.full_path][pending.method.lower()]
        assert "501" in op["responses"] and op["tags"] == [pending.module]


async def test_served_spec_and_docs_page(http: TestClient, spec: dict[str, Any]) -> None:
    served = await send(http, "GET", "/api/v1/openapi.json")
    assert served.status == 200 and served.body == spec
    page = await send(http, "GET", "/api/v1/docs")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/api/v1/planner/keywords/import_csv/" in page.body and "<script" not in page.body
    assert not re.search(r"""(src|href)=["']https?://""", page.body), "the page loads nothing from elsewhere"


# --- schemathesis ----------------------------------------------------------------------------------


def _fuzz_get_operations(spec: dict[str, Any], base_url: str, key: str) -> list[str]:
    """Blocking (schemathesis uses ``requests``): run in a thread while the server serves on the loop."""
    schema = schemathesis.openapi.from_dict(spec).include(method="GET").exclude(tag=_pending_tags(spec))
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=SCHEMATHESIS_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=bearer(key), checks=checks)

        try:
            run()
        except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


def _pending_tags(spec: dict[str, Any]) -> list[str]:
    return sorted({p.module for p in pending_routes()})


async def test_schemathesis_finds_no_server_errors(
    db: Database, http: TestClient, spec: dict[str, Any]
) -> None:
    side = await TenantFactory(db).create()
    await side.keywords("fuzz one", "fuzz two", volume=10)
    base_url = str(http.make_url("/")).rstrip("/")
    failures = await asyncio.to_thread(_fuzz_get_operations, spec, base_url, side.api_key)
    assert failures == [], "\n\n".join(failures)
