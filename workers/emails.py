"""Email jobs: deliver one outbox row; relay rows whose delivery job was lost."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import LockError

from tenantry.jobs import Job
from tenantry.notifications.delivery import Outcome, email_delivery, job_id
from workers.context import ctx_db, ctx_settings

logger = logging.getLogger("tenantry.worker.emails")

RELAY_LOCK = "tenantry:lock:emails.relay"


async def deliver(ctx: dict[str, Any], outbox_id: str) -> str:
    """Send one outbox row; on a transient failure schedule the next try."""
    row_id = uuid.UUID(outbox_id)
    result = await email_delivery.deliver(ctx_db(ctx), ctx_settings(ctx), row_id)
    if result.outcome is Outcome.RETRIED and result.retry_in is not None:
        # If this enqueue is lost, the relay finds the row once it is due. ARQ's own pool
        # sends to this worker's queue (QUEUE_NAME).
        redis: ArqRedis = ctx["redis"]
        await redis.enqueue_job(
            Job.DELIVER_EMAIL.value,
            outbox_id=outbox_id,
            _job_id=job_id(row_id, result.attempts),
            _defer_by=result.retry_in,
        )
    return result.outcome.value


async def relay(ctx: dict[str, Any]) -> int:
    """Re-enqueue overdue pending rows. One worker at a time (a Redis lock), though a
    second relay would only enqueue job ids that ARQ already refuses."""
    redis: ArqRedis = ctx["redis"]
    settings = ctx_settings(ctx)
    lock = redis.lock(
        RELAY_LOCK, timeout=max(settings.email_relay_interval_seconds * 3, 10), blocking=False
    )
    if not await lock.acquire():
        return 0
    try:
        enqueued = 0
        for due in await email_delivery.due(ctx_db(ctx), settings):
            job = await redis.enqueue_job(
                Job.DELIVER_EMAIL.value,
                outbox_id=str(due.id),
                _job_id=job_id(due.id, due.attempts),
            )
            enqueued += job is not None
        if enqueued:
            logger.info("relayed %d overdue email(s)", enqueued)
        return enqueued
    finally:
        try:
            await lock.release()
        except LockError:
            logger.warning("relay lock expired before the relay finished")
