"""How much an API key costs per request next to a user token, and how fast a purge runs.

    TEST_REDIS_DB_BASE=4 uv run python bench/tenancy.py [--requests 1000] [--events 20000]

Builds a throwaway database (migrated, dropped afterwards) on the PostgreSQL of
TEST_DATABASE_ADMIN_URL, serves the app in-process over ASGI (no network), and prints
requests per second and latency percentiles for `GET /api/v1/tenant` with a JWT and with
an API key, then the purge rate in rows per second. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import asyncpg
import httpx

from tenantry import embedded
from tenantry.cli import run_migrations
from tenantry.config import Environment, Settings
from tenantry.db import Database
from tenantry.main import create_app
from tenantry.models import AuditEvent, Role
from tenantry.redis_client import create_redis
from tenantry.tenants.purge import purger
from tests.fixtures.factories import make_actor, make_tenant
from tests.fixtures.services import _url_for
from tests.fixtures.tenancy import make_api_key


async def timed(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get("/api/v1/tenant", headers=headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return samples


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    print(
        f"{name:<10} {len(samples) / sum(samples):8.0f} req/s   p50 {p(0.5):6.2f} ms"
        f"   p99 {p(0.99):6.2f} ms   mean {statistics.mean(samples) * 1000:6.2f} ms"
    )


async def main(requests: int, events: int) -> None:
    admin_dsn = os.environ.get(
        "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database = f"tenantry_bench_{uuid.uuid4().hex[:8]}"
    await embedded.ensure_roles_and_database(admin_dsn, database)
    base = int(os.environ.get("TEST_REDIS_DB_BASE", "10"))
    settings = Settings(
        environment=Environment.TEST,
        database_url=_url_for(admin_dsn, embedded.APP_ROLE, database),
        database_owner_url=_url_for(admin_dsn, embedded.OWNER_ROLE, database),
        redis_url=f"redis://127.0.0.1:6379/{base}",
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
    )
    try:
        await asyncio.to_thread(run_migrations, settings.owner_url, embedded.APP_ROLE)
        db = Database.from_settings(settings)
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        _, key = await make_api_key(db, settings, tenant)
        app = create_app(settings, db=db)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                await timed(client, actor.headers, 50)  # warm-up
                await timed(client, {"X-API-Key": key}, 50)
                report("jwt", await timed(client, actor.headers, requests))
                report("api key", await timed(client, {"X-API-Key": key}, requests))
                bad = {"X-API-Key": key[:-1] + ("a" if key[-1] != "a" else "b")}
                started = time.perf_counter()
                for _ in range(requests):
                    await client.get("/api/v1/tenant", headers=bad)
                rate = requests / (time.perf_counter() - started)
                print(f"typo key  {rate:8.0f} req/s (401 before any database work)")

        async with db.session_scope(tenant.id) as session:
            session.add_all(AuditEvent(tenant_id=tenant.id, action="bench") for _ in range(events))
        async with db.session_scope() as session:
            from sqlalchemy import text

            await session.execute(
                text("UPDATE tenants SET deleted_at = now() WHERE id = :t"), {"t": tenant.id}
            )
        redis = create_redis(settings)
        started = time.perf_counter()
        result = await purger.purge(db, redis, tenant.id)
        elapsed = time.perf_counter() - started
        rows = sum(result.rows.values())
        print(
            f"purge      {rows} rows in {elapsed:.2f} s = {rows / elapsed:8.0f} rows/s (batch 500)"
        )
        await redis.aclose()
        await db.dispose()
    finally:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.events))
