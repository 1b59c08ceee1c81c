from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tenantry.audit.auth import AuditRead
from tenantry.audit.schemas import AuditEventRead, AuditFilters
from tenantry.audit.service import audit as audit_service
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.pagination import Page, PageDep

router = APIRouter(prefix="/audit-events", tags=["audit"], route_class=UnitOfWorkRoute)


@router.get("", response_model=Page[AuditEventRead])
async def list(
    principal: AuditRead,
    session: SessionDep,
    page: PageDep,
    action: Annotated[
        str | None, Query(max_length=100, description="An action, or a prefix ending in '.'")
    ] = None,
    actor_user_id: Annotated[uuid.UUID | None, Query()] = None,
    target_type: Annotated[str | None, Query(max_length=50)] = None,
    target_id: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[AuditEventRead]:
    """Who did what, when and from where in this tenant, newest first (admins)."""
    filters = AuditFilters(
        action=action, actor_user_id=actor_user_id, target_type=target_type, target_id=target_id
    )
    return await audit_service.list(session, principal, page, filters)
