"""QueryModel: one validation of the query string, FastAPI's 422 and OpenAPI shape."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from tenantry.error_handlers import install_error_handlers
from tenantry.models import TaskStatus
from tenantry.tasks.schemas import TaskListQuery, TaskSort

app = FastAPI()
install_error_handlers(app)


@app.get("/tasks", openapi_extra=TaskListQuery.openapi())
async def tasks(request: Request) -> dict[str, object]:
    return TaskListQuery.parse(request).model_dump(mode="json")


async def _get(query: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(f"/tasks?{query}")


async def test_defaults_values_and_unknown_parameters() -> None:
    assert (await _get("")).json() == {
        "limit": 20,
        "cursor": None,
        "status": None,
        "assignee_id": None,
        "q": None,
        "sort": "-created_at",
    }
    body = (await _get("limit=5&status=done&sort=priority&utm_source=x&limit=7")).json()
    assert body["limit"] == 7  # a repeated parameter counts its last value, as in FastAPI
    assert (body["status"], body["sort"]) == (TaskStatus.DONE, TaskSort.PRIORITY)


async def test_invalid_values_answer_422_naming_each_parameter() -> None:
    response = await _get("limit=0&status=nope&assignee_id=1&q=" + "x" * 201)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"query.limit", "query.status", "query.assignee_id", "query.q"}


def test_openapi_documents_every_field_as_a_query_parameter() -> None:
    parameters = app.openapi()["paths"]["/tasks"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == [
        "limit",
        "cursor",
        "status",
        "assignee_id",
        "q",
        "sort",
    ]
    assert all(p["in"] == "query" and p["required"] is False for p in parameters)
    limit = parameters[0]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)
    assert parameters[-1]["schema"]["enum"] == [s.value for s in TaskSort]  # inlined, no $ref
