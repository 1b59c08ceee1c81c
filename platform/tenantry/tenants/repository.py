"""Tenants are global rows (they are the boundary); memberships find them for a user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.models import Membership, Tenant
from tenantry.models.base import utcnow

# In the order the user joined them.
JOINED_FIRST = by_created(col(Membership.created_at), col(Membership.id), descending=False)


class TenantsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_unless_slug_taken(self, tenant: Tenant) -> Tenant | None:
        """Insert, or return None when the slug is taken (race-safe: the unique index decides)."""
        stmt = (
            insert(Tenant)
            .values(**tenant.model_dump())
            .on_conflict_do_nothing(index_elements=["slug"])
            .returning(Tenant)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_live(self, tenant_id: uuid.UUID, *, lock: bool = False) -> Tenant | None:
        stmt = sa.select(Tenant).where(
            col(Tenant.id) == tenant_id, col(Tenant.deleted_at).is_(None)
        )
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def deleted_before(self, age: timedelta) -> list[uuid.UUID]:
        """Tenants deleted longer ago than `age` and still present (not purged yet)."""
        stmt = sa.select(col(Tenant.id)).where(
            col(Tenant.deleted_at).is_not(None), col(Tenant.deleted_at) < utcnow() - age
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def get_for_user(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Any | None:
        """One live tenant of the user's, with their role in it."""
        stmt = (
            sa.select(Tenant, col(Membership.role))
            .join(Membership, col(Membership.tenant_id) == col(Tenant.id))
            .where(
                col(Membership.user_id) == user_id,
                col(Tenant.id) == tenant_id,
                col(Tenant.deleted_at).is_(None),
            )
        )
        return (await self.session.execute(stmt)).first()

    async def page_for_user(
        self, user_id: uuid.UUID, params: PageParams
    ) -> tuple[Sequence[Any], str | None]:
        """The user's live tenants with their role, through the memberships' user arm."""
        stmt = (
            sa.select(Tenant, col(Membership.role), col(Membership.created_at), col(Membership.id))
            .join(Membership, col(Membership.tenant_id) == col(Tenant.id))
            .where(col(Membership.user_id) == user_id, col(Tenant.deleted_at).is_(None))
        )
        return await fetch_page(self.session, stmt, JOINED_FIRST, params, result="rows")
