"""Audit events: written by services in the same transaction as the action they record."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.repository import AuditEventRepository
from tenantry.audit.schemas import AuditEventRead, AuditFilters
from tenantry.auth.principal import Principal
from tenantry.db import Rider
from tenantry.kit.pagination import Page, PageParams


class AuditService:
    def entry(
        self,
        principal: Principal,
        action: str,
        *,
        target_type: str | None = None,
        target_id: object | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The audit row of `action` by the principal, unwritten (`rider`)."""
        return {
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id) if target_id is not None else None,
            "data": data or {},
            "actor_user_id": principal.user_id,
            "actor_api_key_id": principal.api_key_id,
            "ip": principal.ip,
            "user_agent": (principal.user_agent or "")[:400] or None,
        }

    def rider(self, session: AsyncSession, principal: Principal, entry: dict[str, Any]) -> Rider:
        """`entry` (`entry(…)`) as a rider of the write it records: written by the write's
        own statement (`Writes.one(riders=…)`), no round trip of its own."""
        return AuditEventRepository(session, principal.require_tenant()).rider(entry)

    async def record(
        self,
        session: AsyncSession,
        principal: Principal,
        action: str,
        *,
        target_type: str | None = None,
        target_id: object | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record `action` (e.g. "project.created") by the principal in its tenant."""
        entry = self.entry(
            principal, action, target_type=target_type, target_id=target_id, data=data
        )
        await AuditEventRepository(session, principal.require_tenant()).write(**entry)

    async def record_system(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        action: str,
        *,
        target_type: str | None = None,
        target_id: object | None = None,
        data: dict[str, Any] | None = None,
        **actor: Any,
    ) -> None:
        """Record `action` in a tenant; without an actor, the system took it on its own
        authority (a worker disabling a failing webhook). The row is written at once,
        in the unit of work's transaction (one statement, no ORM object to flush)."""
        await AuditEventRepository(session, tenant_id).write(
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            data=data or {},
            **actor,
        )

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        params: PageParams,
        filters: AuditFilters,
    ) -> Page[AuditEventRead]:
        """The tenant's events, newest first."""
        repository = AuditEventRepository(session, principal.require_tenant())
        rows, next_cursor = await repository.page(params, filters)
        return Page(
            items=[AuditEventRead.model_validate(row) for row in rows], next_cursor=next_cursor
        )


audit = AuditService()
