"""The relay wakes what Redis lost, the gauges count what is pending, logs go after 30
days, and the delivery counters move."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.observability.metrics import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_OLDEST_PENDING_AGE,
    WEBHOOK_PENDING,
)
from tenantry.webhooks import events as webhook_events
from tenantry.webhooks import maintenance
from tests.fixtures.factories import Actor
from tests.webhooks.conftest import drain
from tests.webhooks.helpers import add_endpoint, attempts, deliveries, new_project
from tests.webhooks.receiver import Receiver, Reply
from workers import webhooks as webhook_jobs

pytestmark = pytest.mark.committed


async def lost_event(db: Database, tenant_id: uuid.UUID) -> None:
    """An event whose wake-up never reached Redis (the session's jobs are dropped)."""
    async with db.session_scope(tenant_id) as session:
        await webhook_events.emit(session, tenant_id, "project.deleted", {"id": "lost"})
        session.info.pop("jobs", None)


async def backdate(db: Database, tenant_id: uuid.UUID, table: str, column: str, sql: str) -> None:
    async with db.session_scope(tenant_id) as session:
        await session.execute(
            sa.text(f"UPDATE {table} SET {column} = {sql} WHERE tenant_id = :t"), {"t": tenant_id}
        )


async def test_relay_wakes_a_delivery_whose_job_was_lost(
    client: httpx.AsyncClient,
    owner: Actor,
    db: Database,
    settings: Settings,
    redis: ArqRedis,
    receiver: Receiver,
) -> None:
    assert owner.tenant is not None
    await add_endpoint(client, owner, receiver.url())
    await lost_event(db, owner.tenant.id)
    await drain(settings)
    assert receiver.received == []  # nothing queued it
    # Not overdue yet by a relay interval: left alone.
    ctx = {"redis": redis, "settings": settings, "db": db}
    assert await webhook_jobs.relay(ctx) == 0
    await backdate(
        db, owner.tenant.id, "webhook_deliveries", "next_attempt_at", "now() - interval '1 minute'"
    )
    assert await webhook_jobs.relay(ctx) == 1
    await drain(settings)
    assert len(receiver.at("/hook")) == 1
    assert [d.status for d in await deliveries(db, owner.tenant.id)] == ["succeeded"]


async def test_relay_skips_a_delivery_in_flight(
    client: httpx.AsyncClient, owner: Actor, db: Database, receiver: Receiver
) -> None:
    assert owner.tenant is not None
    await add_endpoint(client, owner, receiver.url())
    await lost_event(db, owner.tenant.id)
    await backdate(
        db, owner.tenant.id, "webhook_deliveries", "next_attempt_at", "now() - interval '1 minute'"
    )
    await backdate(
        db, owner.tenant.id, "webhook_deliveries", "lease_until", "now() + interval '1 minute'"
    )
    assert await maintenance.due_endpoints(db, grace=1.0) == []


async def test_the_relay_arm_shows_pending_rows_only_and_only_to_the_relay(
    client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings, receiver: Receiver
) -> None:
    assert owner.tenant is not None
    await add_endpoint(client, owner, receiver.url())
    await new_project(client, owner, "sent")
    await drain(settings)
    await lost_event(db, owner.tenant.id)
    async with db.session_scope() as session:  # no tenant, no maintenance: nothing
        count = "SELECT count(*) FROM webhook_deliveries"
        assert (await session.execute(sa.text(count))).scalar_one() == 0
        await session.execute(sa.text("SELECT set_app_context(p_maintenance => 'webhooks-relay')"))
        statuses = (await session.execute(sa.text("SELECT status FROM webhook_deliveries"))).all()
        assert [s for (s,) in statuses] == ["pending"]
        events = "SELECT count(*) FROM webhook_events"
        assert (await session.execute(sa.text(events))).scalar_one() == 0


async def test_gauges_count_pending_and_the_oldest(
    client: httpx.AsyncClient, owner: Actor, db: Database, receiver: Receiver
) -> None:
    assert owner.tenant is not None
    await add_endpoint(client, owner, receiver.url())
    await lost_event(db, owner.tenant.id)
    await lost_event(db, owner.tenant.id)
    await backdate(
        db, owner.tenant.id, "webhook_deliveries", "created_at", "now() - interval '90 seconds'"
    )
    pending, oldest = await maintenance.refresh_gauges(db)
    assert pending == 2 and 85 < oldest < 600
    assert WEBHOOK_PENDING._value.get() == 2
    assert WEBHOOK_OLDEST_PENDING_AGE._value.get() == oldest


async def test_logs_older_than_30_days_are_pruned(
    client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings, receiver: Receiver
) -> None:
    assert owner.tenant is not None
    await add_endpoint(client, owner, receiver.url())
    await new_project(client, owner, "old")
    await drain(settings)
    await backdate(
        db, owner.tenant.id, "webhook_events", "created_at", "now() - interval '31 days'"
    )
    await new_project(client, owner, "new")
    await drain(settings)
    assert len(await attempts(db, owner.tenant.id)) == 2
    assert await maintenance.prune(db) == 1
    (left,) = await deliveries(db, owner.tenant.id)
    assert left.status == "succeeded"
    assert len(await attempts(db, owner.tenant.id)) == 1  # the old one went with its event
    assert await maintenance.prune(db) == 0


async def test_outcomes_are_counted(
    client: httpx.AsyncClient, owner: Actor, settings: Settings, receiver: Receiver
) -> None:
    before = {o: WEBHOOK_DELIVERIES.labels(o)._value.get() for o in ("succeeded", "retried")}
    receiver.script("/hook", Reply(500))
    await add_endpoint(client, owner, receiver.url())
    await new_project(client, owner)
    await drain(settings)
    assert WEBHOOK_DELIVERIES.labels("retried")._value.get() == before["retried"] + 1
    assert WEBHOOK_DELIVERIES.labels("succeeded")._value.get() == before["succeeded"] + 1
