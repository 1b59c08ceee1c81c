"""Roles and removal, with the rules of the API contract: admins manage members and viewers, only
owners grant or take admin and owner, and a tenant never loses its last owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.auth.principal import Principal, user_id_of
from tenantry.errors import Conflict, Forbidden, NotFound
from tenantry.kit.pagination import Page, PageParams
from tenantry.members.repository import MembershipRepository
from tenantry.members.schemas import MemberRead, MemberUpdate
from tenantry.models import Membership, Role
from tenantry.webhooks.service import webhook_events

_PRIVILEGED = (Role.ADMIN, Role.OWNER)


class LastOwner(Conflict):
    code = "last-owner"
    title = "A tenant needs an owner"


class MemberNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such member in this tenant")


def _check_may_manage(actor: Role | None, target: Role, new_role: Role | None = None) -> None:
    if actor is Role.OWNER:
        return
    if actor is Role.ADMIN and target not in _PRIVILEGED and new_role not in _PRIVILEGED:
        return
    raise Forbidden("Only owners may grant, change or remove the admin and owner roles")


class MemberService:
    async def list(
        self, session: AsyncSession, principal: Principal, params: PageParams
    ) -> Page[MemberRead]:
        rows, next_cursor = await MembershipRepository(session, principal.require_tenant()).page(
            params
        )
        return Page(items=[MemberRead.model_validate(row) for row in rows], next_cursor=next_cursor)

    async def update_role(
        self, session: AsyncSession, principal: Principal, user_id: uuid.UUID, data: MemberUpdate
    ) -> MemberRead:
        repository = MembershipRepository(session, principal.require_tenant())
        owners = await repository.lock_owners()
        membership = await self._locked(repository, user_id)
        previous = Role(membership.role)  # a plain str when loaded from the String column
        _check_may_manage(principal.role, previous, data.role)
        if previous == data.role:
            return await self._read(repository, user_id)
        if previous is Role.OWNER and owners == [user_id]:
            raise LastOwner("The last owner cannot be demoted; make someone else owner first")
        membership.role = data.role
        session.add(membership)
        await session.flush()
        await audit.record(
            session,
            principal,
            "member.role_changed",
            target_type="user",
            target_id=user_id,
            data={"from": previous.value, "to": data.role.value},
        )
        updated = await self._read(repository, user_id)
        await webhook_events.emit(session, repository.tenant_id, "member.updated", updated)
        return updated

    async def remove(self, session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
        leaving = user_id == user_id_of(principal)
        if not leaving and not (principal.role and principal.role.at_least(Role.ADMIN)):
            raise Forbidden("Requires the admin role or higher to remove someone else")
        repository = MembershipRepository(session, principal.require_tenant())
        owners = await repository.lock_owners()
        membership = await self._locked(repository, user_id)
        role = Role(membership.role)
        if not leaving:
            _check_may_manage(principal.role, role)
        if role is Role.OWNER and owners == [user_id]:
            raise LastOwner("The last owner cannot leave or be removed; make someone else owner")
        # In this transaction, before the membership goes (the foreign key would refuse).
        await repository.unassign_tasks(user_id)
        await repository.delete(membership)
        await session.flush()
        await audit.record(
            session,
            principal,
            "member.left" if leaving else "member.removed",
            target_type="user",
            target_id=user_id,
            data={"role": role.value},
        )
        # A member is known by its user's id; leaving or being removed, it is removed.
        await webhook_events.emit(
            session, repository.tenant_id, "member.removed", {"id": str(user_id)}
        )

    async def _locked(self, repository: MembershipRepository, user_id: uuid.UUID) -> Membership:
        membership = await repository.get_by_user(user_id, lock=True)
        if membership is None:
            raise MemberNotFound()
        return membership

    async def _read(self, repository: MembershipRepository, user_id: uuid.UUID) -> MemberRead:
        row = await repository.member_row(user_id)
        if row is None:
            raise MemberNotFound()
        return MemberRead.model_validate(row)

    # For the domains that need memberships of a tenant their caller may not act in
    # yet (tasks' assignees, invitations, a new tenant's owner).

    async def is_member(
        self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID
    ) -> bool:
        return await MembershipRepository(session, tenant_id).is_member(user_id)

    async def has_member_with_email(
        self, session: AsyncSession, tenant_id: uuid.UUID, email: str
    ) -> bool:
        return await MembershipRepository(session, tenant_id).member_with_email(email)

    async def admin_emails(self, session: AsyncSession, tenant_id: uuid.UUID) -> Sequence[str]:
        """Where news for a tenant's managers goes: its active owners and admins."""
        return await MembershipRepository(session, tenant_id).admin_emails()

    async def read(
        self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID
    ) -> MemberRead:
        """A member as the API shows it (for events about a membership just made)."""
        return await self._read(MembershipRepository(session, tenant_id), user_id)

    def add(
        self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, role: Role
    ) -> Membership:
        membership = Membership(tenant_id=tenant_id, user_id=user_id, role=role)
        return MembershipRepository(session, tenant_id).add(membership)


member = MemberService()
