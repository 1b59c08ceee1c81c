"""The HTTP shell every route shares: errors, headers, body cap, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, EmailStr

from tenantry.config import Settings
from tenantry.db import Database, create_engine
from tenantry.deps import SessionDep
from tenantry.errors import Conflict
from tenantry.main import create_app
from tests.fixtures.app import probe_client

probe = APIRouter(prefix="/probe", tags=["probe"])


class Echo(BaseModel):
    email: EmailStr
    count: int


@probe.post("/echo")
async def echo(body: Echo) -> Echo:
    """Echo a valid body."""
    return body


@probe.get("/boom")
async def boom() -> None:
    """Crash with a secret in the message."""
    raise RuntimeError("SELECT password_hash FROM users -- secret detail")


@probe.get("/conflict")
async def conflict() -> None:
    """Raise a typed service error."""
    raise Conflict("Already there")


@probe.get("/db")
async def uses_db(session: SessionDep) -> dict[str, int]:
    """Touch the database."""
    from sqlalchemy import text

    return {"one": (await session.execute(text("SELECT 1"))).scalar_one()}


@pytest.fixture
async def shell(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with probe_client(app, probe) as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


class TestProblemJson:
    async def test_validation_422_names_fields(self, shell: httpx.AsyncClient) -> None:
        body = assert_problem(
            await shell.post("/probe/echo", json={"email": "nope", "count": "x"}), 422
        )
        fields = {e["field"] for e in body["errors"]}
        assert fields == {"body.email", "body.count"}
        assert all(e["message"] for e in body["errors"])

    async def test_malformed_json_is_422(self, shell: httpx.AsyncClient) -> None:
        response = await shell.post(
            "/probe/echo", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(response, 422)

    async def test_unknown_route_is_404_problem(self, shell: httpx.AsyncClient) -> None:
        assert_problem(await shell.get("/api/v1/nothing-here"), 404)

    async def test_wrong_method_is_405_problem(self, shell: httpx.AsyncClient) -> None:
        assert_problem(await shell.delete("/probe/echo"), 405)

    async def test_typed_error_keeps_its_status(self, shell: httpx.AsyncClient) -> None:
        body = assert_problem(await shell.get("/probe/conflict"), 409)
        assert body["detail"] == "Already there"

    async def test_crash_is_500_without_trace(self, shell: httpx.AsyncClient) -> None:
        response = await shell.get("/probe/boom")
        body = assert_problem(response, 500)
        assert "SELECT" not in response.text
        assert "Traceback" not in response.text
        assert body["detail"] == "An unexpected error occurred"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-request-id"]


class TestHeaders:
    async def test_security_headers_everywhere(self, shell: httpx.AsyncClient) -> None:
        for response in (await shell.get("/health"), await shell.get("/nope")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"

    async def test_request_id_is_made(self, shell: httpx.AsyncClient) -> None:
        first = (await shell.get("/health")).headers["x-request-id"]
        second = (await shell.get("/health")).headers["x-request-id"]
        assert first and second and first != second

    async def test_request_id_is_echoed(self, shell: httpx.AsyncClient) -> None:
        response = await shell.get("/health", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    async def test_unsafe_request_id_is_replaced(self, shell: httpx.AsyncClient) -> None:
        response = await shell.get("/health", headers={"X-Request-ID": "evil\tvalue" + "x" * 200})
        assert response.headers["x-request-id"] != "evil\tvalue" + "x" * 200
        assert len(response.headers["x-request-id"]) == 32


class TestBodyCap:
    async def test_declared_large_body_is_413(self, shell: httpx.AsyncClient) -> None:
        body = b'{"email": "a@b.co", "count": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'
        assert_problem(
            await shell.post(
                "/probe/echo", content=body, headers={"content-type": "application/json"}
            ),
            413,
        )

    async def test_chunked_large_body_is_413(self, shell: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"x" * 65536

        response = await shell.post(
            "/probe/echo", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413)

    async def test_body_at_the_limit_passes_the_cap(self, shell: httpx.AsyncClient) -> None:
        payload = b'{"email": "a@b.co", "count": 1}'
        payload = (
            payload[:-1] + b", " + b'"p": "' + b"x" * (1024 * 1024 - len(payload) - 10) + b'"}'
        )
        assert len(payload) <= 1024 * 1024
        response = await shell.post(
            "/probe/echo", content=payload, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200


class TestOpenAPI:
    async def test_docs_and_schema_outside_production(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/docs")).status_code == 200
        schema = (await client.get("/api/openapi.json")).json()
        ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
        assert {"get_liveness", "list_tasks", "update_project"} <= ids
        assert all("_api_v1_" not in i for i in ids)

    async def test_docs_can_be_disabled(self, settings: Settings, db: Database) -> None:
        app = create_app(settings.model_copy(update={"docs_enabled": False}), db=db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/api/docs")).status_code == 404
            assert (await client.get("/api/openapi.json")).status_code == 404


class TestDatabaseDown:
    async def test_request_needing_db_is_quick_503(self, settings: Settings) -> None:
        dead = settings.model_copy(
            update={
                "database_url": "postgresql+asyncpg://tenantry_app@127.0.0.1:1/nope",
                "db_connect_timeout": 1.0,
                "check_db_role": False,
            }
        )
        app = create_app(dead, db=Database.from_settings(dead))
        app.include_router(probe)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/probe/db")
        body = assert_problem(response, 503)
        assert response.headers["retry-after"]
        assert "nope" not in body["detail"]


async def test_superuser_database_role_is_refused(settings: Settings) -> None:
    superuser = settings.model_copy(
        update={"database_url": settings.database_owner_url.replace("tenantry_owner", "postgres")}  # type: ignore[union-attr]
    )
    app = create_app(
        superuser,
        db=Database(create_engine(superuser), Database.from_settings(superuser).sessionmaker),
    )
    with pytest.raises(RuntimeError, match="superuser"):
        async with app.router.lifespan_context(app):
            pass
