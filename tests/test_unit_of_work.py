"""The request's unit of work (`UnitOfWorkRoute`): committed before the response, or not
at all; jobs and cache invalidation only after a commit; no connection for a request
that never touched the database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI
from sqlalchemy import event

from tenantry.config import Settings
from tenantry.db import Database, set_tenant_context
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.errors import Conflict
from tenantry.jobs import Job, enqueue
from tenantry.main import create_app
from tenantry.models import AuditEvent
from tests.fixtures.factories import make_tenant

pytestmark = pytest.mark.committed

probe = APIRouter(prefix="/_probe", route_class=UnitOfWorkRoute)


class Boom(RuntimeError):
    pass


@probe.post("/write/{tenant_id}")
async def write(tenant_id: uuid.UUID, outcome: str, session: SessionDep) -> dict[str, str]:
    await set_tenant_context(session, tenant_id)
    session.add(AuditEvent(tenant_id=tenant_id, action=f"probe.{outcome}"))
    await session.flush()
    enqueue(session, Job.PING, job_id=f"probe-{outcome}-{tenant_id}")
    if outcome == "refused":
        raise Conflict("refused")
    if outcome == "refused-but-recorded":
        raise Conflict("refused", keep_changes=True)
    if outcome == "commit-fails":

        def fail(*_: object) -> None:
            raise Boom("commit refused")

        event.listen(session.sync_session, "before_commit", fail)
    return {"outcome": outcome}


@probe.get("/idle")
async def idle(session: SessionDep) -> dict[str, bool]:
    return {"idle": True}


@pytest.fixture
async def probe_app(settings: Settings, db: Database, redis: ArqRedis) -> AsyncIterator[FastAPI]:
    app = create_app(settings, db=db)
    app.include_router(probe)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def probe_client(probe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=probe_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _actions(db: Database, tenant_id: uuid.UUID) -> list[str]:
    async with db.session_scope(tenant_id) as session:
        rows = await session.execute(sa.select(AuditEvent.action))
        return sorted(rows.scalars())


async def _queued(redis: ArqRedis, settings: Settings, outcome: str, tenant_id: uuid.UUID) -> bool:
    return await redis.zscore(settings.queue_name, f"probe-{outcome}-{tenant_id}") is not None


async def _generation(redis: ArqRedis, tenant_id: uuid.UUID) -> bytes | None:
    value: bytes | None = await redis.get(f"t:{tenant_id}:gen")
    return value


@pytest.mark.parametrize(
    ("outcome", "status", "kept"),
    [
        ("ok", 200, True),
        ("refused", 409, False),
        ("refused-but-recorded", 409, True),
        ("commit-fails", 500, False),
    ],
)
async def test_the_answer_matches_what_was_committed(
    probe_client: httpx.AsyncClient,
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    outcome: str,
    status: int,
    kept: bool,
) -> None:
    tenant = await make_tenant(db)
    await redis.set(f"t:{tenant.id}:gen", b"1")

    response = await probe_client.post(f"/_probe/write/{tenant.id}", params={"outcome": outcome})

    assert response.status_code == status
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    assert await _actions(db, tenant.id) == ([f"probe.{outcome}"] if kept else [])
    # The job leaves, and the tenant's cache is invalidated, only after a commit.
    assert await _queued(redis, settings, outcome, tenant.id) is kept
    assert (await _generation(redis, tenant.id) != b"1") is kept


async def test_a_request_that_never_reads_takes_no_connection(
    probe_client: httpx.AsyncClient, db: Database
) -> None:
    checkouts: list[object] = []
    pool = db.engine.sync_engine.pool
    listener = lambda *args: checkouts.append(args)  # noqa: E731
    event.listen(pool, "checkout", listener)
    try:
        response = await probe_client.get("/_probe/idle")
    finally:
        event.remove(pool, "checkout", listener)
    assert response.status_code == 200
    assert checkouts == []
