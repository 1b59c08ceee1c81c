"""The OpenAPI document describes the server that answers (the contract: "The OpenAPI
document is true"): read in-process, checked against the routes that serve it.

The live checks (schemathesis, a generated client) are in `test_live_contract.py`.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from openapi_spec_validator import validate

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.config import Settings
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.errors import Conflict
from tenantry.kit.conditions import IfMatch
from tenantry.kit.openapi import PROBLEM_JSON, api_routes, raises
from tenantry.main import create_app
from tenantry.projects.schemas import ProjectUpdate

Doc = dict[str, Any]
# An auth alias as a domain's auth.py declares one (for the route added in a test).
WidgetsWrite = Annotated[Principal, Depends(Authorize(Scope.WRITE))]
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> Doc:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    body: Doc = response.json()
    return body


def operations(doc: Doc) -> list[tuple[str, str, Doc]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_the_document_is_valid_openapi(doc: Doc) -> None:
    validate(doc)


def test_every_error_is_problem_json(doc: Doc) -> None:
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], (method, path, status)
            expected = "ValidationProblem" if status == "422" else "Problem"
            assert content[PROBLEM_JSON]["schema"] == {
                "$ref": f"#/components/schemas/{expected}"
            }, (method, path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_statuses_come_from_what_the_route_is_made_of(doc: Doc) -> None:
    paths = doc["paths"]
    # An auth alias: 401/403/429; a path parameter: 404; a body: 413/422; the unit of
    # work: 503; If-Match: 412; the service's own errors, declared on the route: 409.
    patch = set(paths["/api/v1/tasks/{id}"]["patch"]["responses"])
    assert {"200", "401", "403", "404", "412", "413", "422", "429", "503"} <= patch
    assert "409" in paths["/api/v1/members/{user_id}"]["delete"]["responses"]
    assert "409" in paths["/api/v1/tenants"]["post"]["responses"]
    login = set(paths["/api/v1/auth/login"]["post"]["responses"])
    assert {"200", "401", "413", "422", "429", "503"} <= login
    assert "404" not in login
    assert "422" in paths["/api/v1/projects"]["get"]["responses"]  # ?limit=, ?cursor=


def test_every_authenticated_operation_names_its_security(app: FastAPI, doc: Doc) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "name": "X-API-Key"}
    for method, path, op in operations(doc):
        if "401" in op["responses"] and path not in {
            "/api/v1/auth/login",
            "/api/v1/auth/refresh",
        }:
            assert op.get("security"), (method, path)
    tasks = doc["paths"]["/api/v1/projects/{project_id}/tasks"]["get"]
    assert tasks["security"] == [{"bearer": []}, {"apiKey": []}]
    me = doc["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{"bearer": []}]  # account routes refuse API keys
    assert "security" not in doc["paths"]["/api/v1/auth/login"]["post"]
    assert len(list(api_routes(app.routes))) >= len(operations(doc))


def test_headers_are_documented(doc: Doc) -> None:
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            if status == "201":
                assert headers["Location"]["required"], (method, path)
            if status in ("429", "503"):
                assert headers["Retry-After"]["required"], (method, path)
            if status in ("204", "304"):
                assert "content" not in response, (method, path)
    task = doc["paths"]["/api/v1/tasks/{id}"]
    assert "ETag" in task["get"]["responses"]["200"]["headers"]
    assert "304" in task["get"]["responses"]
    assert "X-RateLimit-Remaining" in task["get"]["responses"]["200"]["headers"]
    assert (
        "Idempotent-Replayed"
        in doc["paths"]["/api/v1/projects"]["post"]["responses"]["201"]["headers"]
    )
    parameters = {p["name"]: p for p in task["patch"]["parameters"]}
    assert parameters["If-Match"]["schema"]["type"] == "string"


def test_no_header_is_declared_nullable(doc: Doc) -> None:
    """A header is a string or absent: a schema allowing null let generated clients and
    fuzzers send the text `null` (a malformed If-Match: 412)."""
    for method, path, operation in operations(doc):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "header":
                assert "null" not in json.dumps(parameter["schema"]), (method, path, parameter)


def test_non_json_bodies(doc: Doc) -> None:
    export = doc["paths"]["/api/v1/exports/tasks.csv"]["get"]["responses"]["200"]
    assert list(export["content"]) == ["text/csv"]
    download = doc["paths"]["/api/v1/reports/{report_id}/download"]["get"]["responses"]["200"]
    assert set(download["content"]) == {"text/csv", "application/json"}


def test_names_read_well_in_generated_code(doc: Doc) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    assert {"list_tasks", "get_task", "create_project", "create_api_key", "login"} <= set(ids)
    for operation_id in ids:
        assert operation_id.isidentifier() and operation_id.islower(), operation_id
    schemas = doc["components"]["schemas"]
    assert {"TaskPage", "ProjectPage", "LoginForm", "Problem", "ValidationProblem"} <= set(schemas)
    for name in schemas:
        assert name.isidentifier() and not name.startswith("Body_"), name
        assert "Response" not in name and not name.startswith("Page_"), name
    sort = next(
        p["schema"]
        for p in doc["paths"]["/api/v1/projects/{project_id}/tasks"]["get"]["parameters"]
        if p["name"] == "sort"
    )
    assert dict(zip(sort["enum"], sort["x-enum-varnames"], strict=True))["-created_at"] == (
        "CREATED_AT_DESC"
    )


def test_a_new_endpoint_gets_its_statuses_without_a_table(app: FastAPI, settings: Settings) -> None:
    """What a route is made of decides what it documents: nobody lists statuses."""
    fresh = create_app(settings)
    router = APIRouter(prefix="/api/v1/widgets", tags=["widgets"], route_class=UnitOfWorkRoute)

    @router.patch("/{widget_id}", responses=raises(Conflict))
    async def update(
        widget_id: uuid.UUID,
        body: ProjectUpdate,
        principal: WidgetsWrite,
        session: SessionDep,
        if_match: IfMatch,
    ) -> None:
        """A route added later, by someone else."""

    fresh.include_router(router)
    operation = fresh.openapi()["paths"]["/api/v1/widgets/{widget_id}"]["patch"]
    assert operation["operationId"] == "update_widget"
    assert set(operation["responses"]) == {
        "200", "401", "403", "404", "409", "412", "413", "422", "429", "503",
    }  # fmt: skip
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
