"""Reports: requested by the API, built by a worker, downloaded as a stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit as audit_service
from tenantry.auth.principal import Principal
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.errors import Conflict, NotFound, TooManyRequests
from tenantry.jobs import Job, enqueue
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Report, ReportFormat, ReportStatus
from tenantry.reports.repository import ReportRepository
from tenantry.reports.schemas import ReportCreate, parse_params
from tenantry.reports.storage import storage

CONTENT_TYPES = {ReportFormat.CSV: "text/csv; charset=utf-8", ReportFormat.JSON: "application/json"}


class ReportNotReady(Conflict):
    pass


def report_job_id(report_id: uuid.UUID) -> str:
    return f"report:{report_id}"


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
        audit_service.record(
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

    @staticmethod
    def filename(report: Report) -> str:
        stamp = (report.finished_at or datetime.now(UTC)).strftime("%Y%m%d")
        return f"{report.kind.value}-{stamp}-{str(report.id)[:8]}.{report.format.value}"


report = ReportService()
