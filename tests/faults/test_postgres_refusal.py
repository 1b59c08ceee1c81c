"""PostgreSQL refusing new connections answers 503 with Retry-After, never 500.

`57P03` (starting up, shutting down) and `53300` (too many connections) arrive on
the credential check's raw pooled connection as the asyncpg adapter's own error,
which SQLAlchemy does not wrap (issue #15, item 3: it was a 500). Reproduced on a
PostgreSQL of the test's own: a role's connection limit is cluster-wide, so this must
never run against a shared server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tenantry import embedded
from tenantry.main import create_app
from tests.faults.cluster import Cluster
from tests.fixtures.accounts import bearer, sign_up, tokens_for
from tests.fixtures.services import TestServices as Services

pytestmark = pytest.mark.faults

ME = "/api/v1/users/me"


@pytest.fixture
async def api(cluster: Cluster, test_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    settings = test_services.settings(
        database_url=cluster.url(),
        database_owner_url=cluster.url(embedded.OWNER_ROLE),
        db_connect_timeout=2.0,
        db_pool_size=2,
        db_max_overflow=0,
        rate_limit_enabled=False,
    )
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def _kick_app_role(admin: asyncpg.Connection) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        embedded.APP_ROLE,
    )


def assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 503


async def test_too_many_connections_is_503(api: httpx.AsyncClient, cluster: Cluster) -> None:
    token = (await tokens_for(api, (await sign_up(api))["username"]))["access_token"]
    assert (await api.get(ME, headers=bearer(token))).status_code == 200
    admin = await cluster.admin()
    try:
        await admin.execute(f'ALTER ROLE "{embedded.APP_ROLE}" CONNECTION LIMIT 0')
        await _kick_app_role(admin)
        for path in (ME, "/api/v1/tenants", "/health/ready"):
            assert_503(await api.get(path, headers=bearer(token)))
    finally:
        await admin.execute(f'ALTER ROLE "{embedded.APP_ROLE}" CONNECTION LIMIT -1')
        await admin.close()
    assert (await api.get(ME, headers=bearer(token))).status_code == 200


async def test_shutting_down_is_503(api: httpx.AsyncClient, cluster: Cluster) -> None:
    token = (await tokens_for(api, (await sign_up(api))["username"]))["access_token"]
    assert (await api.get(ME, headers=bearer(token))).status_code == 200
    admin = await cluster.admin()
    # A smart shutdown waits for this session to end, and meanwhile refuses every new
    # connection with 57P03 "the database system is shutting down".
    await asyncio.to_thread(cluster.stop, "smart", wait=False)
    try:
        await _kick_app_role(admin)
        refused = None
        for _ in range(50):
            try:
                probe = await asyncpg.connect(cluster.admin_dsn)
            except asyncpg.CannotConnectNowError as exc:
                refused = exc
                break
            await probe.close()
            await asyncio.sleep(0.1)
        assert refused is not None and refused.sqlstate == "57P03"
        assert_503(await api.get(ME, headers=bearer(token)))
        assert_503(await api.get("/api/v1/tenants", headers=bearer(token)))
    finally:
        await admin.close()
        await asyncio.to_thread(cluster.stop, "fast")  # ends the smart shutdown
        await asyncio.to_thread(cluster.start)
    for _ in range(50):
        if (await api.get(ME, headers=bearer(token))).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await api.get(ME, headers=bearer(token))).status_code == 200
