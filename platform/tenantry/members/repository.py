"""Memberships of the current tenant, joined to their users for display."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import Membership, Role, Task, User

MEMBER_COLUMNS: tuple[Any, ...] = (
    col(Membership.user_id),
    col(User.email),
    col(User.username),
    col(User.full_name),
    col(Membership.role),
    col(Membership.created_at).label("joined_at"),
    col(Membership.id),
)


# Oldest member first: the founder heads the list.
OLDEST_FIRST = by_created(
    col(Membership.created_at), col(Membership.id), descending=False, created_attr="joined_at"
)


class MembershipRepository(TenantRepository[Membership]):
    model = Membership

    async def get_by_user(self, user_id: uuid.UUID, *, lock: bool = False) -> Membership | None:
        stmt = self.select().where(col(Membership.user_id) == user_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_owners(self) -> list[uuid.UUID]:
        """Lock every owner row (in id order, so concurrent callers queue, never deadlock).

        Held until commit, so two owners demoting each other run one after the other
        and the second sees that only one owner is left.
        """
        stmt = (
            sa.select(col(Membership.user_id))
            .where(col(Membership.tenant_id) == self.tenant_id, col(Membership.role) == Role.OWNER)
            .order_by(col(Membership.id))
            .with_for_update()
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def member_row(self, user_id: uuid.UUID) -> Any:
        stmt = (
            sa.select(*MEMBER_COLUMNS)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(col(Membership.tenant_id) == self.tenant_id, col(Membership.user_id) == user_id)
        )
        return (await self.session.execute(stmt)).first()

    async def page(self, params: PageParams) -> tuple[Sequence[Any], str | None]:
        stmt = (
            sa.select(*MEMBER_COLUMNS)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(col(Membership.tenant_id) == self.tenant_id)
        )
        return await fetch_page(self.session, stmt, OLDEST_FIRST, params, result="rows")

    async def is_member(self, user_id: uuid.UUID) -> bool:
        stmt = sa.select(sa.literal(1)).where(
            col(Membership.tenant_id) == self.tenant_id, col(Membership.user_id) == user_id
        )
        return (await self.session.execute(stmt)).first() is not None

    async def member_with_email(self, email: str) -> bool:
        stmt = (
            sa.select(sa.literal(1))
            .select_from(Membership)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(
                col(Membership.tenant_id) == self.tenant_id,
                sa.func.lower(col(User.email)) == email.lower(),
            )
        )
        return (await self.session.execute(stmt)).first() is not None

    async def admin_emails(self) -> list[str]:
        stmt = (
            sa.select(col(User.email))
            .join(Membership, col(Membership.user_id) == col(User.id))
            .where(
                col(Membership.tenant_id) == self.tenant_id,
                col(Membership.role).in_([Role.OWNER, Role.ADMIN]),
                col(User.is_active),
            )
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def unassign_tasks(self, user_id: uuid.UUID) -> None:
        """Clear a leaving member from the tenant's tasks, before their membership goes.

        The assignee foreign key used to do this (ON DELETE SET NULL); Citus refuses that
        on a key that includes the distribution column, so removal does it here, in the
        same transaction, and the foreign key refuses a membership still assigned.
        """
        await self.session.execute(
            sa.update(Task)
            .where(col(Task.tenant_id) == self.tenant_id, col(Task.assignee_id) == user_id)
            .values(assignee_id=None, updated_at=sa.func.now())
            .execution_options(synchronize_session=False)
        )
