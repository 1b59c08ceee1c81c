from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.openapi import raises
from tenantry.kit.pagination import Page, PageParams
from tenantry.members.auth import MembersManage, MembersRead, MembersRemove
from tenantry.members.schemas import MemberRead, MemberUpdate
from tenantry.members.service import LastOwner
from tenantry.members.service import member as member_service

router = APIRouter(prefix="/members", tags=["members"], route_class=UnitOfWorkRoute)


@router.get("", response_model=Page[MemberRead], openapi_extra=PageParams.openapi())
async def list(principal: MembersRead, session: SessionDep, request: Request) -> Page[MemberRead]:
    """List the members of the current tenant with their roles."""
    return await member_service.list(session, principal, PageParams.parse(request))


@router.patch("/{user_id}", response_model=MemberRead, responses=raises(LastOwner))
async def update(
    user_id: uuid.UUID, body: MemberUpdate, principal: MembersManage, session: SessionDep
) -> MemberRead:
    """Change a member's role (owners alone grant or take admin and owner)."""
    return await member_service.update_role(session, principal, user_id, body)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=raises(LastOwner))
async def delete(user_id: uuid.UUID, principal: MembersRemove, session: SessionDep) -> None:
    """Remove a member, or leave the tenant when `user_id` is your own."""
    await member_service.remove(session, principal, user_id)
