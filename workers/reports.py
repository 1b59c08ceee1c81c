"""Build reports: claim, render in one transaction, mark done; safe to run twice.

Crash safety comes from the transaction boundaries, which is why a build is three
calls of the report service rather than one. The claim (status running, attempts+1)
commits first; the chunks, the `succeeded` status and the report-ready email commit
together. A worker killed mid-build leaves a `running` row and no chunks; ARQ re-runs
the job once its timeout passes, and the relay re-enqueues it if Redis lost the job.
A report can therefore never be half-written or emailed twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from tenantry.reports.service import report as report_service
from tenantry.usage import flush as flush_usage
from workers.context import ctx_settings, unit_of_work
from workers.retry import is_transient, retry_later

logger = logging.getLogger("tenantry.worker.reports")

MAX_TRIES = 4


async def build(ctx: dict[str, Any], report_id: str, tenant_id: str) -> str:
    rid, tid = uuid.UUID(report_id), uuid.UUID(tenant_id)
    async with unit_of_work(ctx, tid) as session:
        claim = await report_service.claim(session, tid, rid)
    if claim.done is not None:
        return claim.done
    try:
        if claim.flush_usage:
            await flush_usage(ctx["app_redis"], ctx["db"])
        async with unit_of_work(ctx, tid) as session:
            return await report_service.complete(session, ctx_settings(ctx), tid, rid)
    except Exception as exc:
        job_try = int(ctx.get("job_try", 1))
        if is_transient(exc) and job_try < MAX_TRIES:
            logger.warning("report %s hit a transient error, retrying: %s", rid, exc)
            async with unit_of_work(ctx, tid) as session:
                await report_service.requeue(session, tid, rid)
            raise retry_later(job_try) from exc
        logger.exception("report %s failed", rid)
        async with unit_of_work(ctx, tid) as session:
            await report_service.fail(session, tid, rid)
        return "failed"


async def relay(ctx: dict[str, Any]) -> int:
    """Re-enqueue reports whose job was lost; the jobs leave after the commit."""
    async with unit_of_work(ctx) as session:
        return await report_service.relay(session, ctx_settings(ctx))
