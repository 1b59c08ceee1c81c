from __future__ import annotations

from fastapi import APIRouter, Request

from tenantry.audit.auth import AuditRead
from tenantry.audit.schemas import AuditEventRead, AuditFilters, AuditQuery
from tenantry.audit.service import audit as audit_service
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.pagination import Page

router = APIRouter(prefix="/audit-events", tags=["audit"], route_class=UnitOfWorkRoute)


@router.get(
    "",
    response_model=Page[AuditEventRead],
    openapi_extra=AuditQuery.openapi(),
    operation_id="list_audit_events",
)
async def list(principal: AuditRead, session: SessionDep, request: Request) -> Page[AuditEventRead]:
    """Who did what, when and from where in this tenant, newest first (admins)."""
    query = AuditQuery.parse(request)
    filters = AuditFilters(
        action=query.action,
        actor_user_id=query.actor_user_id,
        target_type=query.target_type,
        target_id=query.target_id,
    )
    return await audit_service.list(session, principal, query, filters)
