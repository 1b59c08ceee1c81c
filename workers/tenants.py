"""Tenant jobs: the purge after a delete, and the relay that re-sends lost purges."""

from __future__ import annotations

import time
import uuid
from typing import Any

from arq import Retry

from tenantry.tenants.purge import DEFAULT_BATCH_SIZE, purger
from tenantry.tenants.service import tenant as tenant_service
from workers.context import ctx_db, unit_of_work

# One run works this long, then hands over to the next run of the same job: the purge
# of a huge tenant never needs a job timeout longer than the worker's (which would also
# lengthen how long every job of a killed worker waits to be picked up again).
PURGE_RUN_SECONDS = 40.0
PURGE_MAX_TRIES = 1000


async def purge(
    ctx: dict[str, Any],
    tenant_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pause_seconds: float = 0.0,
    run_seconds: float = PURGE_RUN_SECONDS,
) -> dict[str, object]:
    """Delete every row of a deleted tenant, in batches; safe to run again at any point.

    Counted like every job by `instrument_job` (a partial run is a `retry`).
    """
    result = await purger.purge(
        ctx_db(ctx),
        ctx["app_redis"],
        uuid.UUID(tenant_id),
        batch_size=batch_size,
        pause_seconds=pause_seconds,
        deadline=time.monotonic() + run_seconds,
    )
    if result.status == "partial":
        raise Retry(defer=0)
    return result.as_dict()


async def relay_purges(ctx: dict[str, Any]) -> int:
    """Re-enqueue purges that a Redis outage or an exhausted job left undone."""
    async with unit_of_work(ctx) as session:
        return await tenant_service.relay_purges(session)
