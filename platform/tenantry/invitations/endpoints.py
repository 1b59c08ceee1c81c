from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from tenantry.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from tenantry.errors import Conflict, Gone, NotFound
from tenantry.invitations.auth import InvitationsAccept, InvitationsManage
from tenantry.invitations.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationListQuery,
    InvitationRead,
)
from tenantry.invitations.service import invitation as invitation_service
from tenantry.kit.http import location
from tenantry.kit.openapi import raises
from tenantry.kit.pagination import Page
from tenantry.tenants.schemas import TenantWithRole

router = APIRouter(prefix="/invitations", tags=["invitations"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=InvitationRead,
    status_code=status.HTTP_201_CREATED,
    responses=raises(Conflict),
)
async def create(
    body: InvitationCreate,
    principal: InvitationsManage,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> InvitationRead:
    """Invite someone by email; the token travels only in the email (admins)."""
    invitation = await invitation_service.create(session, settings, principal, body)
    response.headers["Location"] = location(request, "invitations", invitation.id)
    return invitation


@router.get("", response_model=Page[InvitationRead], openapi_extra=InvitationListQuery.openapi())
async def list(
    principal: InvitationsManage, session: SessionDep, request: Request
) -> Page[InvitationRead]:
    """List the tenant's invitations, newest first (admins)."""
    query = InvitationListQuery.parse(request)
    return await invitation_service.list(session, principal, query, query.status)


# `:uuid` keeps `/invitations/accept` its own resource: DELETE there is 405, not a
# revoke of an invitation with the id "accept".
@router.delete(
    "/{invitation_id:uuid}", status_code=status.HTTP_204_NO_CONTENT, responses=raises(Conflict)
)
async def revoke(
    invitation_id: uuid.UUID, principal: InvitationsManage, session: SessionDep
) -> None:
    """Revoke an invitation so its token stops working (admins)."""
    await invitation_service.revoke(session, principal, invitation_id)


@router.post("/accept", response_model=TenantWithRole, responses=raises(NotFound, Gone, Conflict))
async def accept(
    body: InvitationAccept, principal: InvitationsAccept, session: SessionDep, settings: SettingsDep
) -> TenantWithRole:
    """Accept an invitation sent to your email address and join its tenant."""
    return await invitation_service.accept(session, settings, principal, body)
