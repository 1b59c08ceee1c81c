"""Tenants: the caller of a create becomes owner; a delete hides the tenant at once and
leaves the removal of its rows to the `tenants.purge` job."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.auth.principal import Principal, user_id_of
from tenantry.db import set_tenant_context
from tenantry.errors import Conflict, NotFound
from tenantry.jobs import Job, enqueue
from tenantry.kit.pagination import Page, PageParams
from tenantry.members.service import member as member_service
from tenantry.models import Role, Tenant
from tenantry.models.base import utcnow
from tenantry.tenants.repository import TenantsRepository
from tenantry.tenants.schemas import (
    TenantCreate,
    TenantDeleted,
    TenantRead,
    TenantUpdate,
    TenantWithRole,
)
from tenantry.webhooks.service import webhook_events

logger = logging.getLogger("tenantry.tenants")


class SlugTaken(Conflict):
    code = "slug-taken"

    def __init__(self, slug: str) -> None:
        super().__init__(f"The slug '{slug}' is already taken", extra={"field": "body.slug"})


class TenantNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Tenant not found")


# A deleted tenant still present this long after its deletion has lost its purge
# (Redis was down at enqueue, or the job gave up); the relay enqueues it again.
PURGE_OVERDUE_AFTER = timedelta(minutes=10)


def purge_job_id(tenant_id: object) -> str:
    """One purge per tenant at a time: ARQ refuses a second job with the same id."""
    return f"{Job.PURGE_TENANT.value}:{tenant_id}"


class TenantService:
    async def get_live(self, session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
        """The tenant unless deleted (other domains check it before acting in it)."""
        return await TenantsRepository(session).get_live(tenant_id)

    async def create(
        self, session: AsyncSession, principal: Principal, data: TenantCreate
    ) -> TenantWithRole:
        user_id = user_id_of(principal)
        tenant = await TenantsRepository(session).insert_unless_slug_taken(
            Tenant(name=data.name, slug=data.slug)
        )
        if tenant is None:
            raise SlugTaken(data.slug)
        # The rest of this transaction belongs to the new tenant: RLS checks the
        # membership and audit rows against it.
        await set_tenant_context(session, tenant.id, user_id=user_id)
        member_service.add(session, tenant.id, user_id, Role.OWNER)
        owner = dataclasses.replace(principal, tenant_id=tenant.id, role=Role.OWNER)
        await audit.record(
            session,
            owner,
            "tenant.created",
            target_type="tenant",
            target_id=tenant.id,
            data={"name": tenant.name, "slug": tenant.slug},
        )
        await session.flush()
        return TenantWithRole(**TenantRead.model_validate(tenant).model_dump(), role=Role.OWNER)

    async def list_mine(
        self, session: AsyncSession, principal: Principal, params: PageParams
    ) -> Page[TenantWithRole]:
        rows, next_cursor = await TenantsRepository(session).page_for_user(
            user_id_of(principal), params
        )
        items = [
            TenantWithRole(**TenantRead.model_validate(row.Tenant).model_dump(), role=row.role)
            for row in rows
        ]
        return Page(items=items, next_cursor=next_cursor)

    async def get_mine(
        self, session: AsyncSession, principal: Principal, tenant_id: uuid.UUID
    ) -> TenantWithRole:
        """A tenant the caller belongs to (another one answers 404, as a missing one)."""
        row = await TenantsRepository(session).get_for_user(user_id_of(principal), tenant_id)
        if row is None:
            raise TenantNotFound()
        return TenantWithRole(**TenantRead.model_validate(row.Tenant).model_dump(), role=row.role)

    async def get_current(self, session: AsyncSession, principal: Principal) -> Tenant:
        tenant = await TenantsRepository(session).get_live(principal.require_tenant())
        if tenant is None:
            raise TenantNotFound()
        return tenant

    async def update_current(
        self, session: AsyncSession, principal: Principal, data: TenantUpdate
    ) -> Tenant:
        tenant = await TenantsRepository(session).get_live(principal.require_tenant(), lock=True)
        if tenant is None:
            raise TenantNotFound()
        changes = data.model_dump(exclude_unset=True, exclude_none=True)
        changed = {k: v for k, v in changes.items() if getattr(tenant, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(tenant, key, value)
            session.add(tenant)
            await session.flush()
            await audit.record(
                session,
                principal,
                "tenant.updated",
                target_type="tenant",
                target_id=tenant.id,
                data={"changes": changed},
            )
            await webhook_events.emit(
                session, tenant.id, "tenant.updated", TenantRead.model_validate(tenant)
            )
        return tenant

    async def delete_current(self, session: AsyncSession, principal: Principal) -> TenantDeleted:
        tenant = await TenantsRepository(session).get_live(principal.require_tenant(), lock=True)
        if tenant is None:
            raise TenantNotFound()
        tenant.deleted_at = utcnow()
        session.add(tenant)
        await session.flush()
        # Purged with the tenant, so it is also logged for the platform's operators.
        await audit.record(
            session, principal, "tenant.deleted", target_type="tenant", target_id=tenant.id
        )
        logger.info("tenant %s (%s) deleted by user %s", tenant.id, tenant.slug, principal.user_id)
        _enqueue_purge(session, tenant.id)
        return TenantDeleted(id=tenant.id, slug=tenant.slug, deleted_at=tenant.deleted_at)

    async def relay_purges(self, session: AsyncSession) -> int:
        """Enqueue again every purge that a Redis outage or an exhausted job left undone
        (the jobs leave after this commit, like every job)."""
        overdue = await TenantsRepository(session).deleted_before(PURGE_OVERDUE_AFTER)
        for tenant_id in overdue:
            _enqueue_purge(session, tenant_id)
        return len(overdue)


def _enqueue_purge(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    enqueue(session, Job.PURGE_TENANT, job_id=purge_job_id(tenant_id), tenant_id=str(tenant_id))


tenant = TenantService()
