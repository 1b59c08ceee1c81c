from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from tenantry.admin.auth import Operator
from tenantry.admin.schemas import AdminTenantQuery, AdminTenantRead, AdminTenantUpdate
from tenantry.admin.service import admin as admin_service
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.pagination import Page
from tenantry.models import Tenant

router = APIRouter(prefix="/admin", tags=["admin"], route_class=UnitOfWorkRoute)


@router.get(
    "/tenants",
    response_model=Page[AdminTenantRead],
    openapi_extra=AdminTenantQuery.openapi(),
    operation_id="admin_list_tenants",
)
async def list_tenants(
    principal: Operator, session: SessionDep, request: Request
) -> Page[AdminTenantRead]:
    """List every tenant, newest first (platform operators)."""
    query = AdminTenantQuery.parse(request)
    return await admin_service.list_tenants(
        session,
        query,
        status=query.status,
        plan=query.plan,
        q=query.q,
        include_deleted=query.include_deleted,
    )


@router.patch(
    "/tenants/{tenant_id}", response_model=AdminTenantRead, operation_id="admin_update_tenant"
)
async def update_tenant(
    tenant_id: uuid.UUID, body: AdminTenantUpdate, principal: Operator, session: SessionDep
) -> Tenant:
    """Change a tenant's plan or status; it applies from its next request (operators)."""
    return await admin_service.update_tenant(session, principal, tenant_id, body)
