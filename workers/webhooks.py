"""Webhook jobs: drain one endpoint's due deliveries; wake what Redis lost; prune logs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from arq.connections import ArqRedis

from tenantry.jobs import Job
from tenantry.webhooks import maintenance
from tenantry.webhooks.delivery import webhook_delivery
from tenantry.webhooks.events import generation_key, wake_job_id
from workers.context import ctx_db, ctx_settings

logger = logging.getLogger("tenantry.worker.webhooks")

# One job sends for this long at most, then hands over to a fresh job: a busy endpoint
# never needs a long job timeout (which would also delay ARQ's re-run of a killed job).
DRAIN_SECONDS = 20.0
GENERATION_TTL_SECONDS = 24 * 3600


def job_timeout(timeout: float) -> int:
    """The job's ARQ timeout: its drain budget plus one whole attempt and a margin."""
    return int(DRAIN_SECONDS + timeout + 15)


async def _wake(
    redis: ArqRedis,
    tenant_id: str,
    endpoint_id: str,
    *,
    defer_by: float | None = None,
    job_id: str | None = None,
) -> None:
    if job_id is None:
        generation = await redis.get(generation_key(uuid.UUID(tenant_id), uuid.UUID(endpoint_id)))
        job_id = f"{wake_job_id(uuid.UUID(endpoint_id))}:{int(generation or 0)}"
    await redis.enqueue_job(
        Job.DELIVER_WEBHOOKS.value,
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        _job_id=job_id,
        _defer_by=defer_by,
    )


async def deliver(ctx: dict[str, Any], tenant_id: str, endpoint_id: str) -> int:
    """Send this endpoint's due deliveries one after another until none is due, its
    concurrency cap is reached, or the budget is spent; returns how many were tried.

    Bumping the generation first means any wake-up sent from now on gets a new job id
    and is not absorbed by this job (which may already have looked for the last time).
    """
    redis: ArqRedis = ctx["redis"]
    settings = ctx_settings(ctx)
    tid, eid = uuid.UUID(tenant_id), uuid.UUID(endpoint_id)
    key = generation_key(tid, eid)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, GENERATION_TTL_SECONDS)
        await pipe.execute()
    deadline = time.monotonic() + DRAIN_SECONDS
    tried = 0
    while True:
        result = await webhook_delivery.attempt_next(ctx_db(ctx), settings, tid, eid, redis)
        if result is None:
            return tried
        tried += 1
        if result.retry_in is not None:
            await _wake(
                redis,
                tenant_id,
                endpoint_id,
                defer_by=result.retry_in,
                job_id=f"{wake_job_id(eid)}:retry:{result.delivery_id}:{result.attempt}",
            )
        if result.disabled or not result.more_due:
            # Nothing else was due at the claim; whatever is committed since then woke
            # a job of its own (the generation this job bumped makes it a new one).
            return tried
        if time.monotonic() >= deadline:
            await _wake(redis, tenant_id, endpoint_id)
            return tried
        # Another job may take the next one at the same time, up to the cap.
        await _wake(redis, tenant_id, endpoint_id)


async def relay(ctx: dict[str, Any]) -> int:
    """Wake endpoints whose due deliveries have no job (Redis lost it, a worker died
    mid-send and its lease ran out)."""
    settings = ctx_settings(ctx)
    db = ctx_db(ctx)
    due = await maintenance.due_endpoints(db, grace=float(settings.webhook_relay_interval_seconds))
    for item in due:
        await _wake(ctx["redis"], str(item.tenant_id), str(item.endpoint_id))
    if due:
        logger.info("relayed deliveries of %d webhook endpoint(s)", len(due))
    return len(due)


GAUGE_INTERVAL_SECONDS = 15.0


async def watch_gauges(ctx: dict[str, Any]) -> None:
    """Every worker process refreshes the pending-deliveries gauges on its own timer, so
    each one scraped reports the current value (a cron runs on only one of them)."""
    while True:
        try:
            await maintenance.refresh_gauges(ctx_db(ctx))
        except Exception:
            logger.warning("could not refresh the webhook gauges", exc_info=True)
        await asyncio.sleep(GAUGE_INTERVAL_SECONDS)


async def prune(ctx: dict[str, Any]) -> int:
    """Delivery logs are kept 30 days."""
    removed = await maintenance.prune(ctx_db(ctx))
    if removed:
        logger.info("pruned %d webhook event(s) older than 30 days", removed)
    return removed
