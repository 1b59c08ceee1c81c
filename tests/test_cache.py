"""The tenant read cache: hits, read-your-writes, tenant separation, races, Redis down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from fastapi import FastAPI

from tenantry import cache, embedded
from tenantry.cached_reads import page_key
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.kit.pagination import PageParams
from tenantry.kit.responses import Cached
from tenantry.main import create_app
from tenantry.models import Project, Role, Tenant
from tenantry.observability.metrics import CACHE_REQUESTS
from tenantry.projects.schemas import ProjectListQuery
from tenantry.redis_client import create_redis
from tenantry.tasks.schemas import TaskListQuery
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenant_data import make_project, make_tasks


def _count(name: str, result: str) -> float:
    return CACHE_REQUESTS.labels(name, result)._value.get()


class TestCachedReads:
    async def test_second_read_is_a_hit_under_the_tenant_prefix(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        tenant: Tenant,
        redis: ArqRedis,
    ) -> None:
        project = await make_project(db, tenant)
        url = f"/api/v1/projects/{project.id}"
        hits = _count("project", "hit")
        first = await client.get(url, headers=owner.headers)
        second = await client.get(url, headers=owner.headers)
        assert _count("project", "hit") == hits + 1
        assert second.content == first.content
        assert second.headers["etag"] == first.headers["etag"]
        keys = [k.decode() async for k in redis.scan_iter(match="*project*")]
        assert keys
        assert all(k.startswith(f"t:{tenant.id}:") for k in keys)

    async def test_a_write_made_outside_the_api_is_served_stale_until_invalidated(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        tenant: Tenant,
        redis: ArqRedis,
    ) -> None:
        # Proves the reads above really come from Redis, and that `invalidate` is the
        # lever the unit of work pulls.
        project = await make_project(db, tenant, name="Before")
        url = f"/api/v1/projects/{project.id}"
        await client.get(url, headers=owner.headers)
        async with db.session_scope(tenant.id) as session:
            await session.execute(
                sa.update(Project).where(Project.id == project.id).values(name="After")  # type: ignore[arg-type]
            )
        assert (await client.get(url, headers=owner.headers)).json()["name"] == "Before"
        await cache.invalidate(redis, {tenant.id})
        assert (await client.get(url, headers=owner.headers)).json()["name"] == "After"

    async def test_read_your_writes_for_object_and_first_page(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        (task,) = await make_tasks(db, project, 1, title="v0")
        task_url = f"/api/v1/tasks/{task.id}"
        list_url = f"/api/v1/projects/{project.id}/tasks"
        for version in range(1, 4):
            await client.get(task_url, headers=owner.headers)
            await client.get(list_url, headers=owner.headers)
            patched = await client.patch(
                task_url, json={"title": f"v{version}"}, headers=owner.headers
            )
            assert patched.status_code == 200
            assert (await client.get(task_url, headers=owner.headers)).json()["title"] == (
                f"v{version}"
            )
            listed = (await client.get(list_url, headers=owner.headers)).json()["items"]
            assert [t["title"] for t in listed] == [f"v{version}"]

    async def test_deleting_a_project_empties_its_cached_task_reads(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        (task,) = await make_tasks(db, project, 1)
        await client.get(f"/api/v1/tasks/{task.id}", headers=owner.headers)
        await client.get(f"/api/v1/projects/{project.id}/tasks", headers=owner.headers)
        await client.delete(f"/api/v1/projects/{project.id}", headers=owner.headers)
        task_read = await client.get(f"/api/v1/tasks/{task.id}", headers=owner.headers)
        assert task_read.status_code == 404
        tasks = await client.get(f"/api/v1/projects/{project.id}/tasks", headers=owner.headers)
        assert tasks.status_code == 404


class TestLocalTier:
    """Entries this process keeps in memory, read only under the generation the request
    learned in its own rate-limit round trip."""

    async def test_a_repeat_read_needs_no_redis_entry(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        tenant: Tenant,
        redis: ArqRedis,
    ) -> None:
        project = await make_project(db, tenant, name="Before")
        url = f"/api/v1/projects/{project.id}"
        first = await client.get(url, headers=owner.headers)
        entries = [k async for k in redis.scan_iter(match=f"t:{tenant.id}:project:*")]
        assert entries
        await redis.delete(*entries)  # only the generation is left in Redis
        hits = _count("project", "hit")
        second = await client.get(url, headers=owner.headers)
        assert second.content == first.content
        assert _count("project", "hit") == hits + 1
        # A bump (any process's write) makes the local entry unreachable at once.
        async with db.session_scope(tenant.id) as session:
            await session.execute(
                sa.update(Project).where(Project.id == project.id).values(name="After")  # type: ignore[arg-type]
            )
        await cache.invalidate(redis, {tenant.id})
        assert (await client.get(url, headers=owner.headers)).json()["name"] == "After"

    async def test_serves_with_rate_limits_off(
        self, settings: Settings, db: Database, owner: Actor, tenant: Tenant, redis: ArqRedis
    ) -> None:
        # The generation rides the admission round trip, not the rate limiter: turning
        # limits off must not turn the memory tier off with them.
        app = create_app(settings.model_copy(update={"rate_limit_enabled": False}), db=db)
        project = await make_project(db, tenant)
        url = f"/api/v1/projects/{project.id}"
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = await client.get(url, headers=owner.headers)
                assert "x-ratelimit-limit" not in first.headers
                await redis.delete(*[k async for k in redis.scan_iter(match="t:*:project:*")])
                hits = _count("project", "hit")
                second = await client.get(url, headers=owner.headers)
        assert second.content == first.content
        assert _count("project", "hit") == hits + 1

    async def test_only_the_generation_this_request_read_unlocks_it(
        self, settings: Settings, tenant: Tenant
    ) -> None:
        dead = create_redis(settings, url="redis://127.0.0.1:1/0")  # any use would bypass
        prefix = f"{cache.tenant_prefix(tenant.id)}thing:g"
        cache.local.put(prefix + "100", Cached.of(b"local"))

        async def fill() -> Cached:
            return Cached.of(b"database")

        try:
            cache.note_generation(tenant.id, b"100")
            assert (await cache.cached(dead, tenant.id, "thing", fill, cache="t")).body == b"local"  # type: ignore[union-attr]
            for known in (b"101", None):  # a newer generation, or none known
                cache.note_generation(tenant.id, known)
                value = await cache.cached(dead, tenant.id, "thing", fill, cache="t")
                assert value is not None and value.body == b"database"
            other = uuid.uuid4()  # another tenant's generation unlocks nothing here
            cache.note_generation(other, b"100")
            value = await cache.cached(dead, tenant.id, "thing", fill, cache="t")
            assert value is not None and value.body == b"database"
        finally:
            cache.note_generation(tenant.id, None)
            await dead.aclose()

    def test_entries_expire_like_the_redis_ones(self, monkeypatch: pytest.MonkeyPatch) -> None:
        entries = cache.LocalEntries(max_bytes=1024, ttl_seconds=300)
        now = 1_000.0
        monkeypatch.setattr(cache.time, "monotonic", lambda: now)
        entries.put("k", Cached.of(b"v"))
        now += 299
        assert entries.get("k") is not None
        now += 1
        assert entries.get("k") is None
        entries.put("k", Cached.of(b"w"))  # the slot and its bytes were given back
        assert entries.get("k") == Cached.of(b"w")

    def test_entries_are_bounded_by_size_least_recently_used_first(self) -> None:
        entries = cache.LocalEntries(max_bytes=320)  # entries up to 320 / 16 = 20 bytes
        for index in range(16):
            entries.put(str(index), Cached.of(bytes(20)))  # all sixteen fit exactly
        assert entries.get("0") is not None  # now the most recently used
        entries.put("new", Cached.of(bytes(20)))
        assert entries.get("1") is None  # the least recently used made room
        assert all(entries.get(str(i)) is not None for i in (0, *range(2, 16)))
        entries.put("huge", Cached.of(bytes(21)))  # one page must not flush the rest
        assert entries.get("huge") is None
        assert entries.get("new") is not None


class TestTenantSeparation:
    async def test_cache_of_a_never_serves_b(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        project = await make_project(db, tenant, name="A's")
        await make_tasks(db, project, 2)
        intruder_tenant = await make_tenant(db)
        intruder = await make_actor(db, settings, tenant=intruder_tenant, role=Role.OWNER)
        urls = [
            f"/api/v1/projects/{project.id}",
            f"/api/v1/projects/{project.id}/tasks",
            "/api/v1/projects",
        ]
        for url in urls:  # warm A's cache
            assert (await client.get(url, headers=owner.headers)).status_code == 200
        assert (await client.get(urls[0], headers=intruder.headers)).status_code == 404
        assert (await client.get(urls[1], headers=intruder.headers)).status_code == 404
        own_list = await client.get(urls[2], headers=intruder.headers)
        assert own_list.json()["items"] == []

    async def test_writes_in_b_do_not_touch_a_generation(
        self, redis: ArqRedis, tenant: Tenant
    ) -> None:
        other = uuid.uuid4()
        fills = 0

        async def fill() -> Cached:
            nonlocal fills
            fills += 1
            return Cached.of(b"{}")

        await cache.cached(redis, tenant.id, "x", fill, cache="test")
        await cache.invalidate(redis, {other})
        await cache.cached(redis, tenant.id, "x", fill, cache="test")
        assert fills == 1


class TestRaces:
    async def test_a_stale_fill_after_a_write_is_never_served(
        self, redis: ArqRedis, tenant: Tenant
    ) -> None:
        # A reader loads old data, a writer commits and invalidates, then the slow
        # reader stores what it loaded: the next read must still miss.
        loaded = asyncio.Event()
        release = asyncio.Event()

        async def slow_stale_fill() -> Cached:
            loaded.set()
            await release.wait()
            return Cached.of(b'"old"')

        reader = asyncio.create_task(
            cache.cached(redis, tenant.id, "obj", slow_stale_fill, cache="t")
        )
        await loaded.wait()
        await cache.invalidate(redis, {tenant.id})
        release.set()
        assert (await reader).body == b'"old"'

        async def fresh() -> Cached:
            return Cached.of(b'"new"')

        value = await cache.cached(redis, tenant.id, "obj", fresh, cache="t")
        assert value is not None
        assert value.body == b'"new"'

    async def test_concurrent_misses_fill_once(self, redis: ArqRedis, tenant: Tenant) -> None:
        fills = 0

        async def fill() -> Cached:
            nonlocal fills
            fills += 1
            await asyncio.sleep(0.05)
            return Cached.of(b"[]")

        results = await asyncio.gather(
            *(cache.cached(redis, tenant.id, "hot", fill, cache="t") for _ in range(20))
        )
        assert fills == 1
        assert {r.body for r in results if r} == {b"[]"}

    async def test_generation_never_goes_back_after_the_key_is_lost(
        self, redis: ArqRedis, tenant: Tenant
    ) -> None:
        gen_key = f"t:{tenant.id}:gen"
        for _ in range(3):
            await cache.invalidate(redis, {tenant.id})
        before = int(await redis.get(gen_key))
        await redis.delete(gen_key)  # evicted, or a purge

        async def fill() -> Cached:
            return Cached.of(b"1")

        await cache.cached(redis, tenant.id, "k", fill, cache="t")
        assert int(await redis.get(gen_key)) >= before


@pytest.fixture
async def doomed_redis(tmp_path: Path) -> AsyncIterator[Any]:
    """A throwaway Redis that a test may stop; never the shared one."""
    server = embedded.start_valkey(tmp_path / "valkey", persist=False)
    try:
        yield server
    finally:
        if server.is_running():
            server.stop()


@pytest.fixture
async def fragile_app(
    settings: Settings, db: Database, doomed_redis: Any
) -> AsyncIterator[FastAPI]:
    own = settings.model_copy(update={"redis_url": f"{doomed_redis.connection_url}/0"})
    application = create_app(own, db=db)
    async with application.router.lifespan_context(application):
        yield application


class TestRedisDown:
    async def test_reads_and_writes_still_answer(
        self,
        fragile_app: FastAPI,
        doomed_redis: Any,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        owner: Actor,
    ) -> None:
        project = await make_project(db, tenant)
        (task,) = await make_tasks(db, project, 1)
        transport = httpx.ASGITransport(app=fragile_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
            urls = [f"/api/v1/tasks/{task.id}", f"/api/v1/projects/{project.id}/tasks"]
            for url in urls:
                assert (await api.get(url, headers=owner.headers)).status_code == 200
            doomed_redis.stop()
            bypass = _count("task", "bypass")
            for url in urls:
                response = await api.get(url, headers=owner.headers)
                assert response.status_code == 200, response.text
            assert _count("task", "bypass") == bypass + 1
            patched = await api.patch(urls[0], json={"title": "offline"}, headers=owner.headers)
            assert patched.status_code == 200
            assert (await api.get(urls[0], headers=owner.headers)).json()["title"] == "offline"
            created = await api.post(
                f"/api/v1/projects/{project.id}/tasks",
                json={"title": "still works"},
                headers={**owner.headers, "Idempotency-Key": "k-down"},
            )
            assert created.status_code == 201

    async def test_unreachable_redis_costs_one_attempt_then_the_breaker_skips_it(
        self, settings: Settings, tenant: Tenant
    ) -> None:
        dead = create_redis(settings, url="redis://127.0.0.1:1/0")
        fills = 0

        async def fill() -> Cached:
            nonlocal fills
            fills += 1
            return Cached.of(b"x")

        try:
            bypass = _count("t", "bypass")
            for _ in range(3):
                assert await cache.cached(dead, tenant.id, "k", fill, cache="t") is not None
            assert fills == 3
            assert _count("t", "bypass") == bypass + 3
        finally:
            await dead.aclose()


class TestCacheKey:
    """List keys come from the validated query model, so no filter can be left out."""

    @pytest.mark.parametrize(
        ("query", "changes"),
        [
            (
                TaskListQuery(),
                {
                    "limit": 5,
                    "status": "done",
                    "assignee_id": uuid.uuid4(),
                    "q": "x",
                    "sort": "priority",
                },
            ),
            (ProjectListQuery(), {"limit": 5, "q": "x"}),
        ],
    )
    def test_every_query_field_but_the_cursor_changes_the_key(
        self, query: PageParams, changes: dict[str, Any]
    ) -> None:
        assert set(changes) == set(type(query).model_fields) - {"cursor"}, "a field untested"
        key = page_key("things", query)
        for field, value in changes.items():
            changed = type(query).model_validate({**query.model_dump(), field: value})
            assert page_key("things", changed) != key, field
        assert page_key("things", query.model_copy(update={"cursor": "abc"})) == key

    def test_path_ids_are_part_of_the_key(self) -> None:
        query = TaskListQuery()
        assert page_key("tasks", query, uuid.uuid4()) != page_key("tasks", query, uuid.uuid4())
