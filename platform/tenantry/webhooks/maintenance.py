"""Jobs that span tenants: the relay that wakes lost deliveries, the pending gauges, and
the pruning of delivery logs after 30 days.

RLS stays on: each read opens one narrow, read-only policy arm for the length of its
transaction (the repository names it in `app.maintenance`, migration 0006), and every
write happens in a transaction scoped to one tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenantry.db import Database
from tenantry.observability.metrics import WEBHOOK_OLDEST_PENDING_AGE, WEBHOOK_PENDING
from tenantry.webhooks.repository import WebhookEventRepository, WebhookMaintenanceRepository

RETENTION_DAYS = 30  # the events table's prune arm says the same
PRUNE_BATCH = 1000


@dataclass(frozen=True)
class Due:
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID


async def due_endpoints(db: Database, *, grace: float, limit: int = 1000) -> list[Due]:
    """Endpoints with a delivery overdue by more than `grace` and no live lease: its
    wake-up was lost (Redis down at commit, a worker killed mid-send)."""
    async with db.session_scope() as session:
        rows = await WebhookMaintenanceRepository(session).due_endpoints(grace=grace, limit=limit)
        return [Due(row.tenant_id, row.endpoint_id) for row in rows]


async def refresh_gauges(db: Database) -> tuple[int, float]:
    async with db.session_scope() as session:
        row = await WebhookMaintenanceRepository(session).pending()
    WEBHOOK_PENDING.set(row.pending)
    WEBHOOK_OLDEST_PENDING_AGE.set(float(row.oldest))
    return int(row.pending), float(row.oldest)


async def prune(db: Database, *, days: int = RETENTION_DAYS) -> int:
    """Delete events older than `days` with their deliveries and attempts (the foreign
    keys cascade), a batch per transaction, tenant by tenant."""
    async with db.session_scope() as session:
        tenants = await WebhookMaintenanceRepository(session).tenants_with_events()
    removed = 0
    for tenant_id in tenants:
        while True:
            async with db.session_scope(tenant_id) as session:
                repository = WebhookEventRepository(session, tenant_id)
                count = await repository.delete_older_than(days=days, batch=PRUNE_BATCH)
            removed += count
            if count < PRUNE_BATCH:
                break
    return removed
