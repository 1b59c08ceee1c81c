"""Idempotency-Key on POST: replay, mismatch, in-flight conflicts, scopes, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI, Request

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Project, Role, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant

PROJECTS = "/api/v1/projects"

probe = APIRouter(prefix="/probe", tags=["probe"])
calls: dict[str, int] = {}
gate: dict[str, asyncio.Event] = {}


@probe.post("/slow", status_code=201)
async def slow(request: Request) -> dict[str, Any]:
    """Waits until the test opens the gate."""
    gate["entered"].set()
    await gate["open"].wait()
    return {"ok": True}


@probe.post("/count", status_code=201)
async def count(request: Request) -> dict[str, int]:
    """Anonymous: counts how often it really ran."""
    calls["count"] = calls.get("count", 0) + 1
    return {"run": calls["count"]}


@probe.post("/boom")
async def boom() -> None:
    """Fails like a bug would."""
    calls["boom"] = calls.get("boom", 0) + 1
    raise RuntimeError("kaboom")


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app.include_router(probe)
    calls.clear()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def _keyed(actor: Actor, key: str) -> dict[str, str]:
    return {**actor.headers, "Idempotency-Key": key}


async def _projects(db: Database, tenant: Tenant) -> list[Project]:
    async with db.session_scope(tenant.id) as session:
        return list((await session.execute(sa.select(Project))).scalars())


class TestReplay:
    async def test_same_key_same_body_replays_and_creates_nothing(
        self, api: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        key = str(uuid.uuid4())
        first = await api.post(PROJECTS, json={"name": "Once"}, headers=_keyed(owner, key))
        second = await api.post(PROJECTS, json={"name": "Once"}, headers=_keyed(owner, key))
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        for header in ("location", "etag", "content-type"):
            assert second.headers[header] == first.headers[header]
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert second.headers["x-request-id"]
        assert len(await _projects(db, tenant)) == 1
        async with db.session_scope(tenant.id) as session:
            events = await session.execute(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "project.created")  # type: ignore[arg-type]
            )
            assert events.scalar() == 1

    async def test_without_a_key_each_post_creates(
        self, api: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        for _ in range(2):
            await api.post(PROJECTS, json={"name": "Twice"}, headers=owner.headers)
        assert len(await _projects(db, tenant)) == 2

    async def test_deterministic_4xx_is_replayed(
        self, api: httpx.AsyncClient, owner: Actor
    ) -> None:
        first = await api.post(PROJECTS, json={"name": ""}, headers=_keyed(owner, "bad-1"))
        second = await api.post(PROJECTS, json={"name": ""}, headers=_keyed(owner, "bad-1"))
        assert first.status_code == second.status_code == 422
        assert second.headers["idempotent-replayed"] == "true"
        assert second.json() == first.json()

    async def test_5xx_is_not_kept_so_a_retry_runs_again(self, api: httpx.AsyncClient) -> None:
        for _ in range(2):
            response = await api.post("/probe/boom", headers={"Idempotency-Key": "boom"})
            assert response.status_code == 500
            assert "idempotent-replayed" not in response.headers
        assert calls["boom"] == 2

    async def test_anonymous_posts_are_scoped_by_client_ip(self, api: httpx.AsyncClient) -> None:
        first = await api.post("/probe/count", json={}, headers={"Idempotency-Key": "anon"})
        second = await api.post("/probe/count", json={}, headers={"Idempotency-Key": "anon"})
        assert first.json() == second.json() == {"run": 1}
        assert calls["count"] == 1

    async def test_record_expires_after_24_hours(
        self, api: httpx.AsyncClient, owner: Actor, redis: ArqRedis, tenant: Tenant
    ) -> None:
        await api.post(PROJECTS, json={"name": "ttl"}, headers=_keyed(owner, "ttl"))
        keys = [k async for k in redis.scan_iter(match=f"t:{tenant.id}:idem:*")]
        assert len(keys) == 1
        assert 86_000 < await redis.ttl(keys[0]) <= 86_400


class TestMismatch:
    async def test_same_key_other_body_is_422(
        self, api: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        await api.post(PROJECTS, json={"name": "A"}, headers=_keyed(owner, "k"))
        response = await api.post(PROJECTS, json={"name": "B"}, headers=_keyed(owner, "k"))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [p.name for p in await _projects(db, tenant)] == ["A"]

    async def test_same_key_other_path_is_422(self, api: httpx.AsyncClient, owner: Actor) -> None:
        created = await api.post(PROJECTS, json={"name": "A"}, headers=_keyed(owner, "k2"))
        tasks = f"{PROJECTS}/{created.json()['id']}/tasks"
        response = await api.post(tasks, json={"name": "A"}, headers=_keyed(owner, "k2"))
        assert response.status_code == 422

    @pytest.mark.parametrize("key", ["", "x" * 256])
    async def test_unusable_key_is_400(
        self, api: httpx.AsyncClient, owner: Actor, key: str
    ) -> None:
        response = await api.post(PROJECTS, json={"name": "A"}, headers=_keyed(owner, key))
        assert response.status_code == 400


class TestConcurrency:
    async def test_duplicate_while_in_flight_is_409(self, api: httpx.AsyncClient) -> None:
        gate["entered"], gate["open"] = asyncio.Event(), asyncio.Event()
        headers = {"Idempotency-Key": "slow-1"}
        first = asyncio.create_task(api.post("/probe/slow", json={}, headers=headers))
        await asyncio.wait_for(gate["entered"].wait(), timeout=5)
        duplicate = await api.post("/probe/slow", json={}, headers=headers)
        assert duplicate.status_code == 409
        assert duplicate.headers["retry-after"]
        gate["open"].set()
        assert (await first).status_code == 201
        replay = await api.post("/probe/slow", json={}, headers=headers)
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"


class TestScopes:
    async def test_other_users_of_the_tenant_do_not_share_keys(
        self,
        api: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        colleague = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        for actor in (owner, colleague):
            response = await api.post(PROJECTS, json={"name": "X"}, headers=_keyed(actor, "same"))
            assert response.status_code == 201
            assert "idempotent-replayed" not in response.headers
        assert len(await _projects(db, tenant)) == 2

    async def test_other_tenants_do_not_share_keys(
        self, api: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        other = await make_tenant(db)
        stranger = await make_actor(db, settings, tenant=other, role=Role.OWNER)
        mine = await api.post(PROJECTS, json={"name": "X"}, headers=_keyed(owner, "shared"))
        theirs = await api.post(PROJECTS, json={"name": "X"}, headers=_keyed(stranger, "shared"))
        assert theirs.status_code == 201
        assert theirs.json()["id"] != mine.json()["id"]
        assert len(await _projects(db, other)) == 1

    async def test_a_viewer_is_refused_and_not_remembered(
        self,
        api: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        for _ in range(2):
            response = await api.post(PROJECTS, json={"name": "X"}, headers=_keyed(viewer, "v"))
            assert response.status_code == 403
            assert "idempotent-replayed" not in response.headers


class TestCredentialsAtRest:
    async def test_a_kept_api_key_is_encrypted_and_still_replays(
        self, api: httpx.AsyncClient, owner: Actor, redis: ArqRedis
    ) -> None:
        headers = {**owner.headers, "Idempotency-Key": f"key-{uuid.uuid4()}"}
        body = {"name": "ci", "scopes": ["read"]}
        first = await api.post("/api/v1/api-keys", json=body, headers=headers)
        assert first.status_code == 201
        secret = first.json()["key"]
        # API keys are stored only as hashes: the kept answer must not hold one in clear.
        for raw_key in await redis.keys("*"):
            value = await redis.get(raw_key) if await redis.type(raw_key) == b"string" else None
            assert value is None or secret.encode() not in value
        replay = await api.post("/api/v1/api-keys", json=body, headers=headers)
        assert replay.status_code == 201
        assert replay.json()["key"] == secret
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["cache-control"] == "no-store"
