from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tenantry.config import Settings
from tenantry.db import Database, create_engine
from tenantry.main import create_app
from tenantry.redis_client import create_redis


class TestLiveness:
    async def test_healthy(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "healthy"}


class TestReadiness:
    async def test_ready_when_dependencies_answer(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        assert body["checks"]["postgres"]["status"] == "ok"
        assert body["checks"]["redis"]["status"] == "ok"

    async def test_redis_down_is_503_naming_redis(self, app: FastAPI, settings: Settings) -> None:
        await app.state.redis.aclose()
        app.state.redis = create_redis(settings, url="redis://127.0.0.1:1/0")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            ready = await client.get("/health/ready")
            live = await client.get("/health")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert int(ready.headers["retry-after"]) >= 1
        # RFC 9457: `status` is the HTTP status as a number; verdicts sit under `checks`.
        assert ready.json()["status"] == 503
        assert ready.json()["type"].endswith("/unavailable")
        assert ready.json()["checks"]["redis"]["status"] == "unavailable"
        assert ready.json()["checks"]["postgres"]["status"] == "ok"
        assert live.status_code == 200


@pytest.fixture
async def dead_db_app(settings: Settings) -> FastAPI:
    # A port nobody listens on: the same failure a stopped PostgreSQL gives.
    dead = settings.model_copy(
        update={
            "database_url": "postgresql+asyncpg://tenantry_app@127.0.0.1:1/nope",
            "db_connect_timeout": 1.0,
            "check_db_role": False,
        }
    )
    engine = create_engine(dead)
    return create_app(dead, db=Database(engine, Database.from_settings(dead).sessionmaker))


class TestDatabaseDown:
    async def test_ready_503_live_200(self, dead_db_app: FastAPI) -> None:
        async with dead_db_app.router.lifespan_context(dead_db_app):
            transport = httpx.ASGITransport(app=dead_db_app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/health/ready")
                live = await client.get("/health")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"]["status"] == "unavailable"
        assert live.status_code == 200
