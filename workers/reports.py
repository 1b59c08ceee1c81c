"""Build reports: claim, render in one transaction, mark done; safe to run twice.

Crash safety comes from the transaction boundaries. The claim (status running,
attempts+1) commits first; the chunks, the `succeeded` status and the report-ready
email commit together. A worker killed mid-build leaves a `running` row and no chunks;
ARQ re-runs the job once its timeout passes, and the relay re-enqueues it if Redis lost
the job. A report can therefore never be half-written or emailed twice.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from tenantry.config import get_settings
from tenantry.jobs import Job
from tenantry.models import Report, ReportStatus, User
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.reports import builders
from tenantry.reports.schemas import ReportRead
from tenantry.reports.service import report_job_id
from tenantry.reports.storage import storage
from tenantry.usage import flush as flush_usage
from tenantry.webhooks import events as webhook_events
from workers.context import ctx_settings, unit_of_work
from workers.retry import is_transient, retry_later

logger = logging.getLogger("tenantry.worker.reports")

MAX_TRIES = 4
_SAFE_ERROR = "The report could not be built; it has been logged for the operators"


async def build(ctx: dict[str, Any], report_id: str, tenant_id: str) -> str:
    rid, tid = uuid.UUID(report_id), uuid.UUID(tenant_id)
    async with unit_of_work(ctx, tid) as session:
        report = await session.get(Report, rid, with_for_update=True)
        if report is None or report.tenant_id != tid:
            return "missing"
        if report.status in (ReportStatus.SUCCEEDED, ReportStatus.FAILED):
            return report.status.value
        report.status = ReportStatus.RUNNING
        report.attempts += 1
        report.started_at = datetime.now(UTC)
        report.error = None
    try:
        if builders.needs_usage_flush(report.kind):
            await flush_usage(ctx["app_redis"], ctx["db"])
        return await _render(ctx, rid, tid)
    except Exception as exc:
        job_try = int(ctx.get("job_try", 1))
        if is_transient(exc) and job_try < MAX_TRIES:
            logger.warning("report %s hit a transient error, retrying: %s", rid, exc)
            async with unit_of_work(ctx, tid) as session:
                await session.execute(
                    sa.update(Report)
                    .where(col(Report.id) == rid)
                    .values(status=ReportStatus.QUEUED, error="Retrying after a transient error")
                )
            raise retry_later(job_try) from exc
        logger.exception("report %s failed", rid)
        await _fail(ctx, rid, tid)
        return "failed"


async def _render(ctx: dict[str, Any], rid: uuid.UUID, tid: uuid.UUID) -> str:
    settings = ctx_settings(ctx)
    async with unit_of_work(ctx, tid) as session:
        report = await session.get(Report, rid, with_for_update=True)
        if report is None or report.status is not ReportStatus.RUNNING:
            return "skipped"
        counter = builders.Counter()
        size = await storage.write(session, report, builders.render(session, report, counter))
        report.status = ReportStatus.SUCCEEDED
        report.finished_at = datetime.now(UTC)
        report.size_bytes = size
        report.row_count = counter.rows
        await session.flush()
        await webhook_events.emit(
            session, tid, "report.succeeded", ReportRead.model_validate(report)
        )
        if report.requested_by is not None:
            user = await session.get(User, report.requested_by)
            if user is not None:
                queue_email(
                    session,
                    EmailKind.REPORT_READY,
                    to=user.email,
                    tenant_id=tid,
                    name=user.full_name or user.username,
                    report_kind=report.kind.value.replace("_", " "),
                    link=f"{settings.public_url}/api/v1/reports/{rid}/download",
                )
    return "succeeded"


async def _fail(ctx: dict[str, Any], rid: uuid.UUID, tid: uuid.UUID) -> None:
    async with unit_of_work(ctx, tid) as session:
        await session.execute(
            sa.update(Report)
            .where(col(Report.id) == rid)
            .values(status=ReportStatus.FAILED, error=_SAFE_ERROR, finished_at=datetime.now(UTC))
        )
        report = await session.get(Report, rid, populate_existing=True)
        if report is not None:
            await webhook_events.emit(
                session, tid, "report.failed", ReportRead.model_validate(report)
            )


# Queued this long without starting, or running past the job timeout, means the job
# was lost (Redis flushed, worker killed before ARQ could retry): enqueue it again.
STALE_QUEUED = timedelta(seconds=60)
STALE_RUNNING = timedelta(seconds=get_settings().report_job_timeout + 60)


async def relay(ctx: dict[str, Any]) -> int:
    now = datetime.now(UTC)
    async with unit_of_work(ctx) as session:
        # The relay spans tenants: the reports policy has one narrow, read-only arm for
        # it, showing only in-flight rows while `app.maintenance` names this job.
        await session.execute(sa.text("SELECT set_app_context(p_maintenance => 'reports-relay')"))
        rows = (
            await session.execute(
                sa.text(
                    "SELECT id, tenant_id FROM reports"
                    " WHERE (status = 'queued' AND created_at < :queued)"
                    "    OR (status = 'running' AND started_at < :running)"
                    " LIMIT 500"
                ),
                {"queued": now - STALE_QUEUED, "running": now - STALE_RUNNING},
            )
        ).all()
    redis = ctx["redis"]
    for row in rows:
        await redis.enqueue_job(
            Job.BUILD_REPORT.value,
            _job_id=report_job_id(row.id),
            report_id=str(row.id),
            tenant_id=str(row.tenant_id),
        )
    return len(rows)
