"""Operators change a tenant's plan and status; the principal dependency reads both on
every request, so the change applies to the tenant's very next call."""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.admin.repository import AdminTenantRepository
from tenantry.admin.schemas import AdminTenantRead, AdminTenantUpdate
from tenantry.audit.service import audit
from tenantry.auth.principal import Principal
from tenantry.db import set_tenant_context
from tenantry.errors import NotFound
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Plan, Tenant, TenantStatus


class AdminService:
    async def list_tenants(
        self,
        session: AsyncSession,
        params: PageParams,
        *,
        status: TenantStatus | None = None,
        plan: Plan | None = None,
        q: str | None = None,
        include_deleted: bool = False,
    ) -> Page[AdminTenantRead]:
        rows, next_cursor = await AdminTenantRepository(session).page(
            params, status=status, plan=plan, q=q, include_deleted=include_deleted
        )
        return Page(
            items=[AdminTenantRead.model_validate(row) for row in rows], next_cursor=next_cursor
        )

    async def update_tenant(
        self,
        session: AsyncSession,
        principal: Principal,
        tenant_id: uuid.UUID,
        data: AdminTenantUpdate,
    ) -> Tenant:
        tenant = await AdminTenantRepository(session).get_for_update(tenant_id)
        if tenant is None:
            raise NotFound("Tenant not found")
        changes = {
            key: value
            for key, value in data.model_dump(exclude_none=True).items()
            if getattr(tenant, key) != value
        }
        if not changes:
            return tenant
        previous = {key: str(getattr(tenant, key)) for key in changes}
        for key, value in changes.items():
            setattr(tenant, key, value)
        session.add(tenant)
        await session.flush()
        # The tenant's own audit trail shows what the platform changed, and who did.
        await set_tenant_context(session, tenant.id, user_id=principal.user_id)
        await audit.record(
            session,
            dataclasses.replace(principal, tenant_id=tenant.id, role=None),
            "tenant.operator_updated",
            target_type="tenant",
            target_id=tenant.id,
            data={"from": previous, "to": {key: str(value) for key, value in changes.items()}},
        )
        return tenant


admin = AdminService()
