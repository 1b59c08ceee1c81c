from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tenantry.admin.auth import Operator
from tenantry.admin.schemas import AdminTenantRead, AdminTenantUpdate
from tenantry.admin.service import admin as admin_service
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.pagination import Page, PageDep
from tenantry.models import Plan, Tenant, TenantStatus

router = APIRouter(prefix="/admin", tags=["admin"], route_class=UnitOfWorkRoute)


@router.get("/tenants", response_model=Page[AdminTenantRead])
async def list_tenants(
    principal: Operator,
    session: SessionDep,
    page: PageDep,
    status: Annotated[TenantStatus | None, Query()] = None,
    plan: Annotated[Plan | None, Query()] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=100, description="Part of the name or slug")
    ] = None,
    include_deleted: Annotated[bool, Query(description="Also deleted, not yet purged")] = False,
) -> Page[AdminTenantRead]:
    """List every tenant, newest first (platform operators)."""
    return await admin_service.list_tenants(
        session, page, status=status, plan=plan, q=q, include_deleted=include_deleted
    )


@router.patch("/tenants/{tenant_id}", response_model=AdminTenantRead)
async def update_tenant(
    tenant_id: uuid.UUID, body: AdminTenantUpdate, principal: Operator, session: SessionDep
) -> Tenant:
    """Change a tenant's plan or status; it applies from its next request (operators)."""
    return await admin_service.update_tenant(session, principal, tenant_id, body)
