from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.http import location
from tenantry.kit.openapi import raises
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Tenant
from tenantry.tenants.auth import (
    CurrentTenantAdmin,
    CurrentTenantOwner,
    CurrentTenantRead,
    TenantsUser,
)
from tenantry.tenants.schemas import (
    TenantCreate,
    TenantDeleted,
    TenantRead,
    TenantUpdate,
    TenantWithRole,
)
from tenantry.tenants.service import SlugTaken
from tenantry.tenants.service import tenant as tenant_service

router = APIRouter(tags=["tenants"], route_class=UnitOfWorkRoute)


@router.post(
    "/tenants",
    response_model=TenantWithRole,
    status_code=status.HTTP_201_CREATED,
    responses=raises(SlugTaken),
)
async def create(
    body: TenantCreate,
    principal: TenantsUser,
    session: SessionDep,
    request: Request,
    response: Response,
) -> TenantWithRole:
    """Create a tenant; the caller becomes its owner."""
    tenant = await tenant_service.create(session, principal, body)
    response.headers["Location"] = location(request, "tenants", tenant.id)
    return tenant


@router.get("/tenants", response_model=Page[TenantWithRole], openapi_extra=PageParams.openapi())
async def list(
    principal: TenantsUser, session: SessionDep, request: Request
) -> Page[TenantWithRole]:
    """List the caller's tenants with their role in each."""
    return await tenant_service.list_mine(session, principal, PageParams.parse(request))


@router.get("/tenants/{tenant_id}", response_model=TenantWithRole)
async def get(tenant_id: uuid.UUID, principal: TenantsUser, session: SessionDep) -> TenantWithRole:
    """One of the caller's tenants, with their role in it."""
    return await tenant_service.get_mine(session, principal, tenant_id)


@router.get("/tenant", response_model=TenantRead)
async def get_current_tenant(principal: CurrentTenantRead, session: SessionDep) -> Tenant:
    """Get the tenant the credential is bound to."""
    return await tenant_service.get_current(session, principal)


@router.patch("/tenant", response_model=TenantRead)
async def update_current_tenant(
    body: TenantUpdate, principal: CurrentTenantAdmin, session: SessionDep
) -> Tenant:
    """Rename the current tenant (admins); plan and status belong to operators."""
    return await tenant_service.update_current(session, principal, body)


@router.delete("/tenant", response_model=TenantDeleted, status_code=status.HTTP_202_ACCEPTED)
async def delete_current_tenant(
    principal: CurrentTenantOwner, session: SessionDep
) -> TenantDeleted:
    """Delete the current tenant (owners): access ends now, a job purges its data."""
    return await tenant_service.delete_current(session, principal)
