"""Webhook jobs: drain one endpoint's due deliveries; wake what Redis lost; prune logs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from tenantry.webhooks import maintenance
from tenantry.webhooks.delivery import DRAIN_SECONDS, webhook_delivery
from workers.context import ctx_db, ctx_settings

logger = logging.getLogger("tenantry.worker.webhooks")


def job_timeout(timeout: float) -> int:
    """The job's ARQ timeout: its drain budget plus one whole attempt and a margin."""
    return int(DRAIN_SECONDS + timeout + 15)


async def deliver(ctx: dict[str, Any], tenant_id: str, endpoint_id: str) -> int:
    """Send this endpoint's due deliveries for a while; how many were tried."""
    return await webhook_delivery.drain(
        ctx_db(ctx), ctx_settings(ctx), ctx["redis"], uuid.UUID(tenant_id), uuid.UUID(endpoint_id)
    )


async def relay(ctx: dict[str, Any]) -> int:
    """Wake endpoints whose due deliveries have no job."""
    return await webhook_delivery.relay(ctx_db(ctx), ctx_settings(ctx), ctx["redis"])


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
