from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col

from tenantry.audit.schemas import AuditFilters
from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import AuditEvent

NEWEST_FIRST = by_created(col(AuditEvent.created_at), col(AuditEvent.id))


class AuditEventRepository(TenantRepository[AuditEvent]):
    model = AuditEvent

    async def page(
        self, params: PageParams, filters: AuditFilters
    ) -> tuple[Sequence[Any], str | None]:
        stmt = self.select()
        if filters.action:
            # "member." lists every member action; "member.removed" just that one.
            if filters.action.endswith("."):
                stmt = stmt.where(
                    col(AuditEvent.action).startswith(filters.action, autoescape=True)
                )
            else:
                stmt = stmt.where(col(AuditEvent.action) == filters.action)
        if filters.actor_user_id:
            stmt = stmt.where(col(AuditEvent.actor_user_id) == filters.actor_user_id)
        if filters.target_type:
            stmt = stmt.where(col(AuditEvent.target_type) == filters.target_type)
        if filters.target_id:
            stmt = stmt.where(col(AuditEvent.target_id) == filters.target_id)
        return await fetch_page(self.session, stmt, NEWEST_FIRST, params)
