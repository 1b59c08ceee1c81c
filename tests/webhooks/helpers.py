from __future__ import annotations

import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from tenantry.db import Database
from tenantry.models import WebhookAttempt, WebhookDelivery
from tests.fixtures.factories import Actor


async def add_endpoint(
    client: httpx.AsyncClient, actor: Actor, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/webhooks", json={"url": url, "events": events or ["*"]}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_project(client: httpx.AsyncClient, actor: Actor, name: str = "Apollo") -> str:
    response = await client.post("/api/v1/projects", json={"name": name}, headers=actor.headers)
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


async def deliveries(db: Database, tenant_id: uuid.UUID) -> list[WebhookDelivery]:
    async with db.session_scope(tenant_id) as session:
        rows = await session.execute(
            sa.select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        )
        return list(rows.scalars())


async def attempts(db: Database, tenant_id: uuid.UUID) -> list[WebhookAttempt]:
    async with db.session_scope(tenant_id) as session:
        rows = await session.execute(sa.select(WebhookAttempt).order_by(WebhookAttempt.at))
        return list(rows.scalars())
