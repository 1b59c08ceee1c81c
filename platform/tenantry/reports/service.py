"""Reports: requested by the API, built by a worker, downloaded as a stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit as audit_service
from tenantry.auth.principal import Principal
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.errors import Conflict, NotFound, TooManyRequests
from tenantry.jobs import Job, enqueue
from tenantry.kit.http import api_path, public_link
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Report, ReportFormat, ReportStatus
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.reports import builders
from tenantry.reports.repository import ReportRepository, stale_reports
from tenantry.reports.schemas import ReportCreate, ReportRead, parse_params
from tenantry.reports.storage import storage
from tenantry.users.service import user as user_service
from tenantry.webhooks.service import webhook_events

CONTENT_TYPES = {ReportFormat.CSV: "text/csv; charset=utf-8", ReportFormat.JSON: "application/json"}


class ReportNotReady(Conflict):
    pass


def report_job_id(report_id: uuid.UUID) -> str:
    return f"report:{report_id}"


_SAFE_ERROR = "The report could not be built; it has been logged for the operators"
# Queued this long without starting, or running past the job timeout, means the job
# was lost (Redis flushed, worker killed before ARQ could retry): enqueue it again.
STALE_QUEUED = timedelta(seconds=60)


@dataclass(frozen=True)
class Claim:
    """What `claim` found: `done` names the outcome when there is nothing to build."""

    done: str | None = None
    flush_usage: bool = False


class ReportService:
    async def request(
        self, session: AsyncSession, principal: Principal, body: ReportCreate, settings: Settings
    ) -> Report:
        params = parse_params(body.kind, body.params)
        repo = ReportRepository(session, principal.require_tenant())
        await repo.lock_tenant()
        if await repo.count_in_flight() >= settings.reports_max_in_flight:
            raise TooManyRequests(
                f"At most {settings.reports_max_in_flight} reports may be queued or running "
                "at once; wait for one to finish",
                headers={"Retry-After": "10"},
            )
        report = repo.add(
            Report(
                tenant_id=principal.require_tenant(),
                requested_by=principal.user_id,
                kind=body.kind,
                format=body.format,
                params=params,
            )
        )
        await audit_service.record(
            session,
            principal,
            "report.requested",
            target_type="report",
            target_id=report.id,
            data={"kind": body.kind.value, "format": body.format.value},
        )
        await session.flush()
        enqueue(
            session,
            Job.BUILD_REPORT,
            job_id=report_job_id(report.id),
            report_id=str(report.id),
            tenant_id=str(report.tenant_id),
        )
        return report

    async def get(
        self, session: AsyncSession, principal: Principal, report_id: uuid.UUID
    ) -> Report:
        report = await ReportRepository(session, principal.require_tenant()).get(report_id)
        if report is None:
            raise NotFound("Report not found")
        return report

    async def list(
        self, session: AsyncSession, principal: Principal, page: PageParams
    ) -> Page[Report]:
        rows, next_cursor = await ReportRepository(session, principal.require_tenant()).page(page)
        return Page(items=list(rows), next_cursor=next_cursor)

    async def download(
        self, session: AsyncSession, principal: Principal, report_id: uuid.UUID, db: Database
    ) -> tuple[Report, AsyncIterator[bytes]]:
        report = await self.get(session, principal, report_id)
        if report.status is not ReportStatus.SUCCEEDED:
            raise ReportNotReady(f"Report is {report.status.value}; download it once it succeeded")
        return report, storage.read(db, report)

    # The build, in the worker's transactions (see workers/reports.py for why three).
    # A report moves queued → running → succeeded | failed; running → queued to retry.

    async def claim(self, session: AsyncSession, tenant_id: uuid.UUID, id: uuid.UUID) -> Claim:
        """Mark the report running (attempts + 1), unless it is gone or already final."""
        report = await ReportRepository(session, tenant_id).get_for_update(id)
        if report is None:
            return Claim(done="missing")
        if report.status in (ReportStatus.SUCCEEDED, ReportStatus.FAILED):
            return Claim(done=report.status.value)
        report.status = ReportStatus.RUNNING
        report.attempts += 1
        report.started_at = datetime.now(UTC)
        report.error = None
        return Claim(flush_usage=builders.needs_usage_flush(report.kind))

    async def complete(
        self, session: AsyncSession, settings: Settings, tenant_id: uuid.UUID, id: uuid.UUID
    ) -> str:
        """Render and store the report, mark it succeeded and email the requester."""
        report = await ReportRepository(session, tenant_id).get_for_update(id)
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
            session, tenant_id, "report.succeeded", ReportRead.model_validate(report)
        )
        requester = None
        if report.requested_by is not None:
            requester = await user_service.account(session, report.requested_by)
        if requester is not None:
            queue_email(
                session,
                EmailKind.REPORT_READY,
                to=requester.email,
                tenant_id=tenant_id,
                name=requester.full_name or requester.username,
                report_kind=report.kind.value.replace("_", " "),
                link=public_link(settings, api_path("reports", id, "download")),
            )
        return "succeeded"

    async def requeue(self, session: AsyncSession, tenant_id: uuid.UUID, id: uuid.UUID) -> None:
        await ReportRepository(session, tenant_id).set_status(
            id, ReportStatus.QUEUED, error="Retrying after a transient error"
        )

    async def fail(self, session: AsyncSession, tenant_id: uuid.UUID, id: uuid.UUID) -> None:
        repository = ReportRepository(session, tenant_id)
        await repository.set_status(
            id, ReportStatus.FAILED, error=_SAFE_ERROR, finished_at=datetime.now(UTC)
        )
        report = await repository.get_for_update(id)
        if report is not None:
            await webhook_events.emit(
                session, tenant_id, "report.failed", ReportRead.model_validate(report)
            )

    async def relay(self, session: AsyncSession, settings: Settings) -> int:
        """Enqueue again every report whose job was lost (after this commit)."""
        now = datetime.now(UTC)
        stale = await stale_reports(
            session,
            queued_before=now - STALE_QUEUED,
            running_before=now - timedelta(seconds=settings.report_job_timeout + 60),
        )
        for report_id, tenant_id in stale:
            enqueue(
                session,
                Job.BUILD_REPORT,
                job_id=report_job_id(report_id),
                report_id=str(report_id),
                tenant_id=str(tenant_id),
            )
        return len(stale)

    @staticmethod
    def filename(report: Report) -> str:
        stamp = (report.finished_at or datetime.now(UTC)).strftime("%Y%m%d")
        return f"{report.kind.value}-{stamp}-{str(report.id)[:8]}.{report.format.value}"


report = ReportService()
