"""Hostile bytes in input: NUL, lone surrogates, invalid UTF-8, deep nesting.

Each used to be a 500 (a driver error PostgreSQL raised on the query, or FastAPI's
400 without `errors`); each must be a 422 that names the field (issue #15, items 4
and 7). The property test in tests/faults/test_property.py sweeps every route.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tenantry.db import Database
from tenantry.input_guard import body_field
from tenantry.models import Tenant
from tests.fixtures.factories import Actor
from tests.fixtures.tenant_data import make_project

NUL = "\x00"


def assert_422(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert [e["field"] for e in body["errors"]] == [field]


class TestForms:
    @pytest.mark.parametrize("field", ["username", "password", "tenant"])
    async def test_login_field_with_nul(self, client: httpx.AsyncClient, field: str) -> None:
        form = {"username": "alice", "password": "Secret#123", "tenant": "acme"}
        form[field] = "ali" + NUL + "ce"
        assert_422(await client.post("/api/v1/auth/login", data=form), f"body.{field}")

    async def test_login_raw_form_percent_00(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/v1/auth/login",
            content=b"username=ali%00ce&password=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert_422(response, "body.username")

    async def test_multipart_with_nul(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/v1/auth/login", files={"username": (None, "a\x00b"), "password": (None, "x")}
        )
        assert_422(response, "body")


class TestQuery:
    @pytest.mark.parametrize("path", ["/api/v1/projects", "/api/v1/audit-events"])
    async def test_search_term_with_nul(
        self, client: httpx.AsyncClient, owner: Actor, path: str
    ) -> None:
        response = await client.get(path, params={"q": NUL}, headers=owner.headers)
        assert_422(response, "query.q")

    async def test_task_search_with_nul(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        response = await client.get(
            f"/api/v1/projects/{project.id}/tasks", params={"q": "a\x00"}, headers=owner.headers
        )
        assert_422(response, "query.q")

    async def test_anonymous_query_refused_before_auth(self, client: httpx.AsyncClient) -> None:
        assert_422(await client.get("/api/v1/projects?q=%00"), "query.q")

    async def test_path_with_nul(self, client: httpx.AsyncClient, owner: Actor) -> None:
        assert_422(await client.get("/api/v1/projects/a%00b", headers=owner.headers), "path")


class TestJson:
    # Written as JSON escapes: httpx cannot even encode a lone surrogate.
    @pytest.mark.parametrize("escaped", [r"a\u0000b", r"\ud800", r"x\uDFFFy", r"\ud83d"])
    async def test_project_name(
        self, client: httpx.AsyncClient, owner: Actor, escaped: str
    ) -> None:
        response = await client.post(
            "/api/v1/projects",
            content=('{"name": "' + escaped + '"}').encode(),
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert_422(response, "body.name")

    async def test_a_surrogate_pair_is_fine(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(
            "/api/v1/projects",
            content=b'{"name": "rocket \\ud83d\\ude80"}',
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert response.status_code == 201
        assert response.json()["name"] == "rocket \U0001f680"

    async def test_sign_up_full_name(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/v1/users/",
            json={
                "email": f"u{uuid.uuid4().hex[:8]}@example.com",
                "username": f"u{uuid.uuid4().hex[:8]}",
                "password": "Secret#123",
                "full_name": "Al" + NUL,
            },
        )
        assert_422(response, "body.full_name")

    async def test_switch_tenant(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(
            "/api/v1/auth/switch-tenant", json={"tenant": NUL}, headers=owner.headers
        )
        assert_422(response, "body.tenant")

    async def test_api_key_name(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(
            "/api/v1/api-keys",
            json={"name": "ci" + NUL, "scopes": ["read"]},
            headers=owner.headers,
        )
        assert_422(response, "body.name")

    async def test_nested_path_is_named(self) -> None:
        assert body_field("application/json", b'{"a": [{"b": "\\u0000"}]}') == "body.a.0.b"
        assert body_field("application/json", b'{"a": "\\\\u0000"}') is None  # literal text


class TestMalformedBodies:
    async def test_invalid_utf8(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(
            "/api/v1/projects",
            content=b'{"name": "\xff\xfe"}',
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert_422(response, "body")

    async def test_nested_deeper_than_the_parser_goes(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        depth = 100_000
        response = await client.post(
            "/api/v1/projects",
            content=b"[" * depth + b"]" * depth,
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert_422(response, "body")
