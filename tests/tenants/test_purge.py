"""The purge after a tenant is deleted, run by real ARQ workers against real PostgreSQL and
Redis: it removes every tenant-owned row of that tenant (tables found from the metadata),
its outbox mail and Redis keys, then the tenant; nothing of any other tenant; and a
worker killed half-way leaves a purge that the next run finishes."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.jobs import Job
from tenantry.models import AuditEvent, AuthSession, EmailOutbox, Role, Tenant
from tenantry.tenants.purge import purger, tenant_tables
from tenantry.tenants.service import PURGE_OVERDUE_AFTER, purge_job_id
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenancy import count_rows, make_api_key, make_invitation
from tests.fixtures.worker import drain_queue, worker_process
from workers.tenants import relay_purges

pytestmark = pytest.mark.committed

SEEDED_TABLES = {"memberships", "invitations", "api_keys", "audit_events"}


async def seed(
    db: Database, settings: Settings, redis: ArqRedis, *, events: int = 30
) -> tuple[Tenant, Actor]:
    tenant = await make_tenant(db)
    owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
    for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
        await make_actor(db, settings, tenant=tenant, role=role)
    for _ in range(3):
        await make_invitation(db, settings, tenant)
        await make_api_key(db, settings, tenant)
    async with db.session_scope(tenant.id) as session:
        session.add_all(
            AuditEvent(tenant_id=tenant.id, action="seed", data={"i": i}) for i in range(events)
        )
    async with db.session_scope() as session:
        session.add_all(
            EmailOutbox(
                tenant_ref=tenant.id,
                kind="invitation",
                to_email="x@example.com",
                subject="s",
                text_body="t",
            )
            for _ in range(3)
        )
    for i in range(5):
        await redis.set(f"t:{tenant.id}:seed:{i}", "1")
    return tenant, owner


async def census(db: Database, redis: ArqRedis, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Rows per tenant-owned table, outbox rows, Redis keys and the tenant row itself."""
    counts: dict[str, Any] = {
        table.name: await count_rows(db, table.name, tenant_id) for table in tenant_tables()
    }
    async with db.session_scope() as session:
        counts["email_outbox"] = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(EmailOutbox)
                .where(EmailOutbox.tenant_ref == tenant_id)  # type: ignore[arg-type]
            )
        ).scalar_one()
        counts["tenant"] = (
            await session.execute(
                sa.select(sa.func.count()).select_from(Tenant).where(Tenant.id == tenant_id)
            )  # type: ignore[arg-type]
        ).scalar_one()
    counts["redis"] = len([k async for k in redis.scan_iter(match=f"t:{tenant_id}:*")])
    return counts


async def run_burst_worker(settings: Settings) -> None:
    await drain_queue(settings)


class TestPurgeJob:
    async def test_delete_then_worker_purges_that_tenant_only(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, redis: ArqRedis
    ) -> None:
        doomed, owner = await seed(db, settings, redis)
        kept, _ = await seed(db, settings, redis)
        # The owner also belongs to the kept tenant; that membership must survive.
        await make_actor(db, settings, tenant=kept, role=Role.VIEWER, user=owner.user)
        before_doomed = await census(db, redis, doomed.id)
        before_kept = await census(db, redis, kept.id)
        assert all(before_doomed[name] > 0 for name in SEEDED_TABLES | {"email_outbox", "redis"})

        assert (await client.delete("/api/v1/tenant", headers=owner.headers)).status_code == 202
        await run_burst_worker(settings)

        after_doomed = await census(db, redis, doomed.id)
        assert after_doomed == dict.fromkeys(after_doomed, 0)
        assert await census(db, redis, kept.id) == before_kept
        async with db.session_scope() as session:
            bound = (
                await session.execute(
                    sa.select(AuthSession.bound_tenant_id).where(AuthSession.id == owner.session_id)
                )  # type: ignore[arg-type]
            ).scalar_one()
        assert bound is None

    async def test_refuses_a_live_tenant_and_is_idempotent(
        self, db: Database, settings: Settings, redis: ArqRedis
    ) -> None:
        live, _ = await seed(db, settings, redis)
        before = await census(db, redis, live.id)
        result = await purger.purge(db, redis, live.id)
        assert result.status == "not-deleted"
        assert await census(db, redis, live.id) == before
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == live.id).values(deleted_at=sa.func.now())
            )  # type: ignore[arg-type]
        assert (await purger.purge(db, redis, live.id)).status == "purged"
        assert (await purger.purge(db, redis, live.id)).status == "gone"

    async def test_time_budget_hands_over_to_the_next_run(
        self, db: Database, settings: Settings, redis: ArqRedis
    ) -> None:
        tenant, _ = await seed(db, settings, redis, events=300)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == tenant.id).values(deleted_at=sa.func.now())
            )  # type: ignore[arg-type]
        # A spent budget stops after one batch: the worker re-queues the job (arq Retry)
        # until a run finishes, each run carrying on from the last committed batch.
        job = await redis.enqueue_job(
            Job.PURGE_TENANT.value,
            _job_id=purge_job_id(tenant.id),
            tenant_id=str(tenant.id),
            batch_size=40,
            run_seconds=0,
        )
        assert job is not None
        await run_burst_worker(settings)
        after = await census(db, redis, tenant.id)
        assert after == dict.fromkeys(after, 0)


class TestKilledWorker:
    async def test_resumes_after_sigkill(
        self, db: Database, settings: Settings, redis: ArqRedis
    ) -> None:
        tenant, _ = await seed(db, settings, redis, events=1500)
        other, _ = await seed(db, settings, redis)
        before_other = await census(db, redis, other.id)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == tenant.id).values(deleted_at=sa.func.now())
            )  # type: ignore[arg-type]
        job_id = purge_job_id(tenant.id)
        await redis.enqueue_job(
            Job.PURGE_TENANT.value,
            _job_id=job_id,
            tenant_id=str(tenant.id),
            batch_size=20,
            pause_seconds=0.01,
        )
        proc = worker_process({"REDIS_URL": settings.redis_url})
        try:
            # A cold worker process on a busy 2-core machine can take a while to start.
            deadline = time.monotonic() + 120
            while True:
                left = await count_rows(db, "audit_events", tenant.id)
                if 0 < left < 1400:
                    break
                assert left > 0, "the purge finished before it could be killed; slow it down"
                assert time.monotonic() < deadline, "the purge never started"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        half = await census(db, redis, tenant.id)
        assert 0 < half["audit_events"] < 1500
        assert half["tenant"] == 1  # the tenant row goes last, so a relay can still find it
        # ARQ re-runs a killed worker's job once its in-progress key expires (the job
        # timeout + 10 s); expire it now instead of waiting.
        assert await redis.delete(f"arq:in-progress:{job_id}") == 1
        await run_burst_worker(settings)
        after = await census(db, redis, tenant.id)
        assert after == dict.fromkeys(after, 0)
        assert await census(db, redis, other.id) == before_other


class TestRelay:
    async def test_reenqueues_only_overdue_purges(
        self, db: Database, settings: Settings, redis: ArqRedis
    ) -> None:
        overdue, recent, live = await make_tenant(db), await make_tenant(db), await make_tenant(db)
        long_ago = datetime.now(UTC) - PURGE_OVERDUE_AFTER - timedelta(minutes=1)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == overdue.id).values(deleted_at=long_ago)
            )  # type: ignore[arg-type]
            await session.execute(
                sa.update(Tenant).where(Tenant.id == recent.id).values(deleted_at=sa.func.now())
            )  # type: ignore[arg-type]
        assert await relay_purges({"db": db, "redis": redis}) == 1
        assert await redis.exists(f"arq:job:{purge_job_id(overdue.id)}")
        assert not await redis.exists(f"arq:job:{purge_job_id(recent.id)}")
        assert not await redis.exists(f"arq:job:{purge_job_id(live.id)}")
