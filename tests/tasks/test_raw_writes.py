"""Task writes on the unit of work's raw write transaction (`db.writes_for`): committed
data and a real pool, as in production (the rest of the suite writes through savepoints
on the test's connection instead). Each write is one statement that also carries its
audit row and asks whether a webhook endpoint listens (`db.Rider`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlmodel import col

from tenantry import cache
from tenantry.config import Settings
from tenantry.db import Database, end_writes, set_tenant_context, use_database, writes_for
from tenantry.models import AuditEvent, Role, Task, WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.fixtures.factories import Actor, make_actor, make_tenant

pytestmark = pytest.mark.committed


async def _project(client: httpx.AsyncClient, actor: Actor) -> str:
    response = await client.post("/api/v1/projects", json={"name": "Raw"}, headers=actor.headers)
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


async def _rows(db: Database, tenant_id: uuid.UUID, model: Any, **where: Any) -> list[Any]:
    async with db.session_scope(tenant_id) as session:
        stmt = sa.select(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return list((await session.execute(stmt)).scalars())


def _checked_out(db: Database) -> int:
    count: int = db.engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
    return count


async def test_create_and_update_write_the_row_and_its_audit_in_one_transaction(
    client: httpx.AsyncClient, owner: Actor, db: Database, redis: ArqRedis
) -> None:
    tenant_id = owner.tenant.id  # type: ignore[union-attr]
    project = await _project(client, owner)
    generation = await redis.get(cache.generation_key(tenant_id))
    created = await client.post(
        f"/api/v1/projects/{project}/tasks",
        json={"title": "  Ship  ", "priority": 1},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["title"] == "Ship" and body["priority"] == 1 and body["status"] == "todo"
    assert created.headers["location"].endswith(f"/api/v1/tasks/{body['id']}")
    assert body["created_at"] == body["updated_at"]
    # The read cache was invalidated before the answer went out.
    assert await redis.get(cache.generation_key(tenant_id)) != generation
    got = await client.get(f"/api/v1/tasks/{body['id']}", headers=owner.headers)
    assert got.json() == body and got.headers["etag"] == created.headers["etag"]

    updated = await client.patch(
        f"/api/v1/tasks/{body['id']}", json={"status": "done"}, headers=owner.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "done" and updated.json()["title"] == "Ship"
    assert updated.json()["updated_at"] > body["updated_at"]

    (task,) = await _rows(db, tenant_id, Task, id=uuid.UUID(body["id"]))
    assert task.status == "done" and task.title == "Ship"
    events = await _rows(db, tenant_id, AuditEvent, target_id=body["id"])
    assert sorted((e.action, e.actor_user_id) for e in events) == [
        ("task.created", owner.user.id),
        ("task.updated", owner.user.id),
    ]
    by_action = {e.action: e.data for e in events}
    assert by_action["task.created"] == {"project_id": project, "title": "Ship"}
    assert by_action["task.updated"] == {"fields": ["status"]}
    # No endpoint listens: no event, no delivery, and no connection left checked out.
    assert await _rows(db, tenant_id, WebhookEvent) == []
    assert _checked_out(db) == 0


async def test_a_listening_endpoint_gets_the_event_as_written(
    client: httpx.AsyncClient, owner: Actor, db: Database
) -> None:
    tenant_id = owner.tenant.id  # type: ignore[union-attr]
    project = await _project(client, owner)
    async with db.session_scope(tenant_id) as session:
        endpoint = WebhookEndpoint(
            tenant_id=tenant_id,
            url="https://hooks.example.com/t",
            events=["task.updated"],
            secret_sealed="sealed",
        )
        session.add(endpoint)
    created = await client.post(
        f"/api/v1/projects/{project}/tasks", json={"title": "Heard"}, headers=owner.headers
    )
    task_id = created.json()["id"]
    # Subscribed to updates only: the create records nothing for webhooks.
    assert await _rows(db, tenant_id, WebhookEvent) == []
    updated = await client.patch(
        f"/api/v1/tasks/{task_id}", json={"priority": 4}, headers=owner.headers
    )
    assert updated.status_code == 200, updated.text
    (event,) = await _rows(db, tenant_id, WebhookEvent)
    assert event.type == "task.updated"
    assert json.loads(event.body)["data"] == updated.json()
    (delivery,) = await _rows(db, tenant_id, WebhookDelivery)
    assert delivery.endpoint_id == endpoint.id and delivery.event_id == event.id


async def test_refused_writes_leave_no_row_and_no_audit(
    client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
) -> None:
    tenant_id = owner.tenant.id  # type: ignore[union-attr]
    project = await _project(client, owner)
    stranger = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
    missing = await client.post(
        f"/api/v1/projects/{uuid.uuid4()}/tasks", json={"title": "Lost"}, headers=owner.headers
    )
    assert missing.status_code == 404
    not_member = await client.post(
        f"/api/v1/projects/{project}/tasks",
        json={"title": "Lost", "assignee_id": str(stranger.user.id)},
        headers=owner.headers,
    )
    assert not_member.status_code == 422
    assert not_member.json()["errors"][0]["field"] == "body.assignee_id"
    gone = await client.patch(
        f"/api/v1/tasks/{uuid.uuid4()}", json={"title": "Lost"}, headers=owner.headers
    )
    assert gone.status_code == 404
    # The update's audit row rode in its statement and was rolled back with it.
    assert await _rows(db, tenant_id, Task) == []
    assert [e.action for e in await _rows(db, tenant_id, AuditEvent)] == ["project.created"]
    assert _checked_out(db) == 0


async def test_the_session_may_not_begin_a_second_transaction_beside_raw_writes(
    owner: Actor, db: Database
) -> None:
    tenant_id = owner.tenant.id  # type: ignore[union-attr]
    async with db.sessionmaker() as session:
        use_database(session, db)
        await set_tenant_context(session, tenant_id, user_id=owner.user.id)
        writes = await writes_for(session)
        assert await writes.all(sa.select(col(Task.id))) == []
        with pytest.raises(RuntimeError, match="beside its open writes_for"):
            await session.execute(sa.select(col(Task.id)))
        await end_writes(session, RuntimeError("refused"))
    assert _checked_out(db) == 0


async def _waiting_on_locks(db: Database, count: int) -> None:
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(600):
        async with db.engine.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} requests never queued behind the row lock")


async def test_if_match_holds_until_the_write(
    client: httpx.AsyncClient, owner: Actor, db: Database
) -> None:
    """Two PATCHes with the same tag, held at the row: one writes, the other is 412."""
    tenant_id = owner.tenant.id  # type: ignore[union-attr]
    project = await _project(client, owner)
    created = await client.post(
        f"/api/v1/projects/{project}/tasks", json={"title": "Once"}, headers=owner.headers
    )
    url = f"/api/v1/tasks/{created.json()['id']}"
    headers = {**owner.headers, "If-Match": created.headers["etag"]}
    async with db.session_scope(tenant_id) as holder:
        await holder.execute(
            sa.select(Task)
            .where(col(Task.tenant_id) == tenant_id, col(Task.id) == created.json()["id"])
            .with_for_update()
        )
        racing = [
            asyncio.create_task(client.patch(url, json={"title": t}, headers=headers))
            for t in ("First", "Second")
        ]
        await _waiting_on_locks(db, 2)
    statuses = sorted(r.status_code for r in await asyncio.gather(*racing))
    assert statuses == [200, 412]
    updates = await _rows(db, tenant_id, AuditEvent, action="task.updated")
    assert len(updates) == 1
