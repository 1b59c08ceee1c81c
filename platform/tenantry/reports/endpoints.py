from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tenantry.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from tenantry.kit.http import location
from tenantry.kit.openapi import documented_body, raises
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Report
from tenantry.reports.auth import ReportsRead
from tenantry.reports.schemas import ReportCreate, ReportQueued, ReportRead, ReportRequest
from tenantry.reports.service import CONTENT_TYPES, ReportNotReady
from tenantry.reports.service import report as report_service

router = APIRouter(prefix="/reports", tags=["reports"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    status_code=202,
    response_model=ReportQueued,
    openapi_extra=documented_body(ReportRequest),
    responses={
        202: {
            "description": "Queued; poll `Location` for its status",
            "headers": {
                "Location": {
                    "description": "The report's status URL",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def create(
    body: ReportCreate,
    principal: ReportsRead,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> Report:
    """Queue a report; poll the `Location` until it succeeds, then download it."""
    report = await report_service.request(session, principal, body, settings)
    response.headers["Location"] = location(request, "reports", report.id)
    return report


@router.get("", response_model=Page[ReportRead], openapi_extra=PageParams.openapi())
async def list(principal: ReportsRead, session: SessionDep, request: Request) -> Page[Report]:
    """List the tenant's reports, newest first."""
    return await report_service.list(session, principal, PageParams.parse(request))


@router.get("/{report_id}", response_model=ReportRead)
async def get(report_id: uuid.UUID, principal: ReportsRead, session: SessionDep) -> Report:
    """A report's status: queued, running, succeeded or failed (with `error`)."""
    return await report_service.get(session, principal, report_id)


@router.get(
    "/{report_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The report file, in the format it was requested in",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
            "headers": {
                "Content-Disposition": {
                    "description": "`attachment` with the file's name",
                    "schema": {"type": "string"},
                }
            },
        },
        **raises(ReportNotReady),
    },
)
async def download(
    report_id: uuid.UUID, principal: ReportsRead, session: SessionDep, request: Request
) -> StreamingResponse:
    """Stream the finished file; 409 until the report has succeeded."""
    report, body = await report_service.download(
        session, principal, report_id, request.app.state.db
    )
    return StreamingResponse(
        body,
        media_type=CONTENT_TYPES[report.format],
        headers={
            "Content-Disposition": f'attachment; filename="{report_service.filename(report)}"',
            "Cache-Control": "private, no-cache",
        },
    )
