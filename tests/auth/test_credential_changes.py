"""PostgreSQL announces credential changes made past the API (`auth.credential_changes`),
and a kept answer stands long only while its process provably hears them.

Committed data: a NOTIFY is delivered only when its transaction commits. Changes are
made as a script would, on the migration owner's own connection, so nothing in the API
bumps a generation but the listener.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import cache
from tenantry.auth import credential_changes, principal_cache
from tenantry.auth.credential_changes import CredentialChanges
from tenantry.auth.principal_cache import Kept, principals
from tenantry.db import Database
from tests.fixtures.factories import Actor
from tests.fixtures.services import TestServices

pytestmark = pytest.mark.committed

TENANT_ROUTE = "/api/v1/projects"
# The jobs of .ci/citus: the app role's connections through a transaction pooler, which
# carries no notifications, or a Citus cluster, where no trigger announces anything.
POOLED = bool(os.environ.get("TEST_DATABASE_APP_PORT"))
CITUS = bool(os.environ.get("TENANTRY_EXPECT_CITUS"))
direct = pytest.mark.skipif(POOLED or CITUS, reason="nothing is heard here")


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credential_changes, "PING_SECONDS", 0.1)
    monkeypatch.setattr(credential_changes, "RETRY_SECONDS", 0.1)
    principals.clear()


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)


def _said_deaf(changes: CredentialChanges, why: str) -> Callable[[], Awaitable[bool]]:
    """The listener has tried, and found itself not hearing for that reason."""

    async def said() -> bool:
        return why in (changes.deaf_because or "")

    return said


async def _hearing() -> bool:
    return principal_cache.hearing_epoch() is not None


async def _deaf() -> bool:
    return principal_cache.hearing_epoch() is None


@pytest.fixture
async def listener(db: Database, redis: ArqRedis) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(CredentialChanges(db, redis).run())
    await _until(_hearing, "the listener hears its own ping")
    yield task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await _deaf()


async def _by_hand(owner_engine: AsyncEngine, *sql: str, **params: object) -> None:
    async with owner_engine.begin() as connection:
        for statement in sql:
            await connection.execute(sa.text(statement), params)


@direct
async def test_a_change_by_hand_bumps_the_generation_it_names(
    listener: asyncio.Task[None], owner_engine: AsyncEngine, redis: ArqRedis, owner: Actor
) -> None:
    assert owner.tenant is not None
    user_key = principal_cache.user_generation_key(owner.user.id)
    tenant_key = principal_cache.tenant_generation_key(owner.tenant.id)
    in_tenant = "SELECT set_app_context(CAST(CAST(:tenant AS uuid) AS text), CAST(CAST(:user AS uuid) AS text))"
    for sql, key in [
        ("UPDATE users SET full_name = 'By hand' WHERE id = :user", user_key),
        ("UPDATE auth_sessions SET revoked_at = now() WHERE user_id = :user", user_key),
        ("DELETE FROM memberships WHERE user_id = :user", user_key),  # tenant-owned: RLS
        ("UPDATE tenants SET name = 'By hand' WHERE id = :tenant", tenant_key),
    ]:
        before = await redis.get(key)
        await _by_hand(owner_engine, in_tenant, sql, user=owner.user.id, tenant=owner.tenant.id)

        async def bumped(key: str = key, before: bytes | None = before) -> bool:
            return await redis.get(key) not in (None, before)

        await _until(bumped, sql)


@direct
async def test_a_session_revoked_by_hand_is_refused_on_the_next_calls(
    app: FastAPI, client: httpx.AsyncClient, owner_engine: AsyncEngine, owner: Actor
) -> None:
    """Through the app's own listener; the kept answer could otherwise stand 10 min."""
    await _until(_hearing, "the app's listener hears")
    for _ in range(2):
        assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 200
    kept = principals.get((owner.session_id, owner.user.id, owner.tenant.id))  # type: ignore[union-attr]
    assert kept is not None and kept[1] is not None, "kept and confirmed"
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 200
    await _by_hand(
        owner_engine,
        "UPDATE auth_sessions SET revoked_at = now() WHERE id = :s",
        s=owner.session_id,
    )

    async def refused() -> bool:
        return (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 401

    await _until(refused, "the revocation is seen", seconds=2.0)


@direct
async def test_a_ping_that_is_never_heard_means_deaf(db: Database, redis: ArqRedis) -> None:
    """As behind a PgBouncer in transaction mode, which carries no notifications: the
    connection listens, but nothing proves it hears, so nothing is kept long."""
    pings: list[str] = []

    async def lost(payload: str) -> None:
        pings.append(payload)

    task = asyncio.create_task(CredentialChanges(db, redis, ping=lost).run())
    try:

        async def pinged_twice() -> bool:
            return len(pings) >= 2

        await _until(pinged_twice, "two pings sent")
        assert await _deaf()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@direct
async def test_without_the_triggers_it_is_deaf(
    db: Database, redis: ArqRedis, owner_engine: AsyncEngine
) -> None:
    """As on Citus, or a database not yet migrated."""
    await _by_hand(owner_engine, "ALTER TABLE tenants DISABLE TRIGGER credentials_changed")
    try:
        changes = CredentialChanges(db, redis)
        task = asyncio.create_task(changes.run())
        await _until(_said_deaf(changes, "no credentials_changed triggers"), "the check ran")
        assert await _deaf()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await _by_hand(owner_engine, "ALTER TABLE tenants ENABLE TRIGGER credentials_changed")


@direct
async def test_a_lost_connection_is_deaf_until_it_listens_again(
    listener: asyncio.Task[None], test_services: TestServices
) -> None:
    kept: Kept[str, str] = Kept(10, ttl_seconds=0.0, heard_ttl_seconds=3600)
    epoch = principal_cache.hearing_epoch()
    kept.put("checked while hearing", "answer", epoch)
    assert kept.get("checked while hearing") == "answer"
    admin = await asyncpg.connect(test_services.admin_dsn)
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND query = 'LISTEN \"tenantry_credentials\"'",
            test_services.database,
        )
    finally:
        await admin.close()
    assert ended == 1
    await _until(_deaf, "the lost connection is noticed")
    await _until(_hearing, "it listens again")
    assert principal_cache.hearing_epoch() != epoch
    # Checked before the gap, when a change may have gone unheard: the short time.
    assert kept.get("checked while hearing") is None


@direct
async def test_redis_refusing_a_bump_is_retried(
    listener: asyncio.Task[None],
    owner_engine: AsyncEngine,
    redis: ArqRedis,
    owner: Actor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused: list[list[str]] = []
    invalidate = cache.invalidate

    async def flaky(redis: ArqRedis, tenants: set[uuid.UUID], keys: list[str]) -> bool:
        if not refused:
            refused.append(keys)
            return False  # as when Redis does not answer
        done: bool = await invalidate(redis, tenants, keys)
        return done

    monkeypatch.setattr(cache, "invalidate", flaky)
    key = principal_cache.user_generation_key(owner.user.id)
    before = await redis.get(key)
    await _by_hand(
        owner_engine, "UPDATE users SET full_name = 'Again' WHERE id = :u", u=owner.user.id
    )

    async def bumped() -> bool:
        return await redis.get(key) not in (None, before)

    await _until(bumped, "the bump lands once Redis answers")
    assert refused == [[key]]


def test_an_answer_stands_long_only_under_the_hearing_it_was_checked_in() -> None:
    kept: Kept[str, str] = Kept(10, ttl_seconds=0.0, heard_ttl_seconds=3600)
    principal_cache.hear(False)
    kept.put("deaf", "a", principal_cache.hearing_epoch())
    assert kept.get("deaf") is None
    principal_cache.hear(True)
    try:
        kept.put("heard", "b", principal_cache.hearing_epoch())
        kept.put("unknown", "c")
        assert kept.get("heard") == "b" and kept.get("unknown") is None
        principal_cache.hear(False)
        assert kept.get("heard") is None  # deaf now: the short time applies to all
    finally:
        principal_cache.hear(False)


@pytest.mark.skipif(not (POOLED or CITUS), reason="only in the PgBouncer and Citus jobs")
async def test_where_nothing_can_be_heard_kept_answers_keep_the_short_time(
    app: FastAPI, client: httpx.AsyncClient, owner: Actor
) -> None:
    """Behind the pooler the app's listener LISTENs, but its pings, announced through
    the pool, never come back; on Citus it finds no triggers. Either way kept answers
    keep the short time, and calls are served."""
    for _ in range(3):
        assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 200
    why = "no credentials_changed triggers" if CITUS else "a ping was not heard back"
    changes = app.state.credential_changes
    await _until(_said_deaf(changes, why), "the app's listener tried", seconds=10.0)
    assert await _deaf()
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 200
