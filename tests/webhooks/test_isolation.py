"""One endpoint that hangs must not hold up another, and never gets more than its cap."""

from __future__ import annotations

import uuid

import httpx
import pytest
from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.jobs import send_jobs, take_jobs
from tenantry.models import Role
from tenantry.webhooks import events as webhook_events
from tests.fixtures.factories import make_actor, make_tenant
from tests.webhooks.conftest import kill, start_worker, wait_for
from tests.webhooks.helpers import add_endpoint, attempts, new_project
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.committed

CAP = 2
PENDING = 200


async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    redis: ArqRedis,
    receiver: Receiver,
) -> None:
    tenant = await make_tenant(db)
    owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
    # Hangs far beyond the timeout: every attempt to it takes the whole 20 s.
    receiver.defaults["/hang"] = Reply(200, delay=120)
    await add_endpoint(client, owner, receiver.url("/hang"), ["project.deleted"])
    await add_endpoint(client, owner, receiver.url("/healthy"), ["project.created"])
    async with db.session_scope(tenant.id) as session:
        for _ in range(PENDING):
            await webhook_events.emit(
                session, tenant.id, "project.deleted", {"id": str(uuid.uuid4())}
            )
        jobs = take_jobs(session)
    await send_jobs(redis, jobs)

    worker = start_worker(WEBHOOK_TIMEOUT_SECONDS="20", WEBHOOK_CONCURRENCY_PER_ENDPOINT=str(CAP))
    try:
        await wait_for(lambda: receiver.in_flight["/hang"] == CAP)
        await new_project(client, owner)
        await wait_for(lambda: len(receiver.at("/healthy")) == 1)
        # The healthy delivery arrived while the hanging endpoint's first attempts were
        # still in flight: not one of them has timed out and been recorded yet.
        hang_attempts = [a for a in await attempts(db, tenant.id) if a.status_code != 200]
        assert hang_attempts == []
        assert receiver.in_flight["/hang"] == CAP
        assert receiver.max_in_flight["/hang"] == CAP
        assert len(receiver.at("/hang")) == CAP
    finally:
        kill(worker)
        receiver.release.set()
