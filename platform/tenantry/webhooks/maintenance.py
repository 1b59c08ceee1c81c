"""Jobs that span tenants: the relay that wakes lost deliveries, the pending gauges, and
the pruning of delivery logs after 30 days.

RLS stays on: each read opens one narrow, read-only policy arm for the length of its
transaction by naming itself in `app.maintenance` (migration 0006), and every write
happens in a transaction scoped to one tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from tenantry.db import Database
from tenantry.observability.metrics import WEBHOOK_OLDEST_PENDING_AGE, WEBHOOK_PENDING

RETENTION_DAYS = 30  # the events table's prune arm says the same
PRUNE_BATCH = 1000

_RELAY = "SELECT set_app_context(p_maintenance => 'webhooks-relay')"
_PRUNE = "SELECT set_app_context(p_maintenance => 'webhooks-prune')"

_DUE = sa.text(
    """
    SELECT DISTINCT tenant_id, endpoint_id FROM (
        SELECT tenant_id, endpoint_id FROM webhook_deliveries
         WHERE status = 'pending'
           AND next_attempt_at <= clock_timestamp() - make_interval(secs => :grace)
           AND (lease_until IS NULL OR lease_until <= clock_timestamp())
         ORDER BY next_attempt_at
         LIMIT :limit) AS due
    """
)
_GAUGES = sa.text(
    """
    SELECT count(*) AS pending,
           coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest
      FROM webhook_deliveries WHERE status = 'pending'
    """
)
_OLD_TENANTS = sa.text("SELECT DISTINCT tenant_id FROM webhook_events LIMIT 500")
_DELETE_OLD = sa.text(
    """
    DELETE FROM webhook_events WHERE tenant_id = :tenant AND id IN (
        SELECT id FROM webhook_events
         WHERE tenant_id = :tenant
           AND created_at < now() - make_interval(days => :days)
         LIMIT :batch)
    """
)


@dataclass(frozen=True)
class Due:
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID


async def due_endpoints(db: Database, *, grace: float, limit: int = 1000) -> list[Due]:
    """Endpoints with a delivery overdue by more than `grace` and no live lease: its
    wake-up was lost (Redis down at commit, a worker killed mid-send)."""
    async with db.session_scope() as session:
        await session.execute(sa.text(_RELAY))
        rows = await session.execute(_DUE, {"grace": grace, "limit": limit})
        return [Due(row.tenant_id, row.endpoint_id) for row in rows]


async def refresh_gauges(db: Database) -> tuple[int, float]:
    async with db.session_scope() as session:
        await session.execute(sa.text(_RELAY))
        row = (await session.execute(_GAUGES)).one()
    WEBHOOK_PENDING.set(row.pending)
    WEBHOOK_OLDEST_PENDING_AGE.set(float(row.oldest))
    return int(row.pending), float(row.oldest)


async def prune(db: Database, *, days: int = RETENTION_DAYS) -> int:
    """Delete events older than `days` with their deliveries and attempts (the foreign
    keys cascade), a batch per transaction, tenant by tenant."""
    async with db.session_scope() as session:
        await session.execute(sa.text(_PRUNE))
        tenants = [row.tenant_id for row in await session.execute(_OLD_TENANTS)]
    removed = 0
    for tenant_id in tenants:
        while True:
            async with db.session_scope(tenant_id) as session:
                result = await session.execute(
                    _DELETE_OLD, {"tenant": tenant_id, "days": days, "batch": PRUNE_BATCH}
                )
            count = int(getattr(result, "rowcount", 0) or 0)
            removed += count
            if count < PRUNE_BATCH:
                break
    return removed
