"""Every tenant, for operators. Tenants are global rows; nothing tenant-owned is read
here, so no RLS setting is needed (or would help: memberships stay hidden)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.models import Plan, Tenant, TenantStatus

NEWEST_FIRST = by_created(col(Tenant.created_at), col(Tenant.id))


class AdminTenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        params: PageParams,
        *,
        status: TenantStatus | None,
        plan: Plan | None,
        q: str | None,
        include_deleted: bool,
    ) -> tuple[Sequence[Any], str | None]:
        stmt = sa.select(Tenant)
        if status:
            stmt = stmt.where(col(Tenant.status) == status)
        if plan:
            stmt = stmt.where(col(Tenant.plan) == plan)
        if q:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(
                sa.or_(col(Tenant.name).ilike(pattern), col(Tenant.slug).ilike(pattern))
            )
        if not include_deleted:
            stmt = stmt.where(col(Tenant.deleted_at).is_(None))
        return await fetch_page(self.session, stmt, NEWEST_FIRST, params)

    async def get_for_update(self, tenant_id: uuid.UUID) -> Tenant | None:
        stmt = (
            sa.select(Tenant)
            .where(col(Tenant.id) == tenant_id, col(Tenant.deleted_at).is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
