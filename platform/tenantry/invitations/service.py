"""Invitations: pending for seven days, revocable, single-use, and accepted only by the
signed-up user with the invited address. The token is emailed and kept only as a hash.

Inviting an address that already has a pending invitation answers 409 (revoke it
first, or let it expire): a second live token for the same seat would be a second
way in that nobody is tracking.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.auth import tokens
from tenantry.auth.principal import Principal, user_id_of
from tenantry.config import Settings
from tenantry.db import set_tenant_context
from tenantry.errors import Conflict, Forbidden, Gone, NotFound
from tenantry.invitations.repository import InvitationRepository, find_by_token_hash
from tenantry.invitations.schemas import InvitationAccept, InvitationCreate, InvitationRead
from tenantry.kit.http import public_link
from tenantry.kit.pagination import Page, PageParams
from tenantry.members.service import member as member_service
from tenantry.models import Invitation, InvitationStatus, Role, TenantStatus, User
from tenantry.models.base import utcnow
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.tenants.schemas import TenantRead, TenantWithRole
from tenantry.tenants.service import tenant as tenant_service
from tenantry.webhooks.service import webhook_events

INVITATION_TTL = timedelta(days=7)
_PRIVILEGED = (Role.ADMIN, Role.OWNER)


class InvitationNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Invitation not found")


class AlreadyMember(Conflict):
    code = "already-member"


class InvitationPending(Conflict):
    code = "invitation-pending"


def _read(invitation: Invitation) -> InvitationRead:
    fields = {
        name: getattr(invitation, name) for name in InvitationRead.model_fields if name != "status"
    }
    return InvitationRead.model_validate({**fields, "status": invitation.status_at(utcnow())})


def _owners_only(principal: Principal, role: Role) -> None:
    if role in _PRIVILEGED and principal.role is not Role.OWNER:
        raise Forbidden("Only owners may invite or revoke admins and owners")


class InvitationService:
    async def create(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        data: InvitationCreate,
    ) -> InvitationRead:
        tenant_id = principal.require_tenant()
        inviter_id = user_id_of(principal)
        _owners_only(principal, data.role)
        email = str(data.email)
        if await member_service.has_member_with_email(session, tenant_id, email):
            raise AlreadyMember(f"{email} is already a member of this tenant")
        repository = InvitationRepository(session, tenant_id)
        now = utcnow()
        existing = await repository.open_for_email(email)
        if existing is not None:
            if existing.status_at(now) is InvitationStatus.PENDING:
                raise InvitationPending(
                    f"{email} already has a pending invitation; revoke it to send a new one"
                )
            existing.revoked_at = now  # expired: it frees the address for a new one
            session.add(existing)
            await session.flush()
        token = tokens.new_secret(32)
        invitation = Invitation(
            tenant_id=tenant_id,
            email=email,
            role=data.role,
            token_hash=tokens.hash_secret(settings, token),
            invited_by=inviter_id,
            expires_at=now + INVITATION_TTL,
        )
        if not await repository.insert_unless_pending(invitation):
            # Two invitations to one address at the same moment: the unique index picked one.
            raise InvitationPending(f"{email} already has a pending invitation")
        tenant = await tenant_service.get_live(session, tenant_id)
        inviter = await session.get(User, inviter_id)
        # The principal dependency has just proved that both exist.
        assert tenant is not None
        assert inviter is not None
        queue_email(
            session,
            EmailKind.INVITATION,
            to=email,
            tenant_id=tenant_id,
            tenant_name=tenant.name,
            inviter=inviter.full_name or inviter.email,
            role=data.role.value,
            token=token,
            link=public_link(settings, "/invitations/accept", token=token),
            expires=invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
        await audit.record(
            session,
            principal,
            "invitation.created",
            target_type="invitation",
            target_id=invitation.id,
            data={"email": email, "role": data.role.value},
        )
        created = _read(invitation)
        await webhook_events.emit(session, tenant_id, "invitation.created", created)
        return created

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        params: PageParams,
        status: InvitationStatus | None,
    ) -> Page[InvitationRead]:
        repository = InvitationRepository(session, principal.require_tenant())
        rows, next_cursor = await repository.page(params, status, utcnow())
        return Page(items=[_read(row) for row in rows], next_cursor=next_cursor)

    async def revoke(
        self, session: AsyncSession, principal: Principal, invitation_id: uuid.UUID
    ) -> None:
        repository = InvitationRepository(session, principal.require_tenant())
        invitation = await repository.get_for_update(invitation_id)
        if invitation is None:
            raise InvitationNotFound()
        _owners_only(principal, Role(invitation.role))
        if invitation.accepted_at is not None:
            raise Conflict("This invitation was accepted; remove the member instead")
        if invitation.revoked_at is not None:
            return  # already revoked: the DELETE is idempotent
        invitation.revoked_at = utcnow()
        session.add(invitation)
        await session.flush()
        await audit.record(
            session,
            principal,
            "invitation.revoked",
            target_type="invitation",
            target_id=invitation.id,
            data={"email": invitation.email},
        )

    async def accept(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        data: InvitationAccept,
    ) -> TenantWithRole:
        """Join the invitation's tenant. Unknown token → 404; someone else's → 403;
        accepted, revoked or expired → 410."""
        user_id = user_id_of(principal)
        found = await find_by_token_hash(session, tokens.hash_secret(settings, data.token))
        if found is None:
            raise NotFound("No invitation matches this token")
        tenant_id = found.tenant_id
        # From here the transaction is the invitation's tenant's, as any member's would be.
        await set_tenant_context(session, tenant_id, user_id=user_id)
        invitation = await InvitationRepository(session, tenant_id).get_for_update(found.id)
        user = await session.get(User, user_id)
        if invitation is None or user is None:
            raise NotFound("No invitation matches this token")
        if user.email.lower() != invitation.email.lower():
            raise Forbidden("This invitation was sent to another email address")
        state = invitation.status_at(utcnow())
        if state is not InvitationStatus.PENDING:
            raise Gone(f"This invitation is {state.value}")
        tenant = await tenant_service.get_live(session, tenant_id)
        if tenant is None:
            raise Gone("This tenant no longer exists")
        if tenant.status == TenantStatus.SUSPENDED:
            raise Forbidden("This tenant is suspended")
        if await member_service.is_member(session, tenant_id, user_id):
            raise AlreadyMember("You are already a member of this tenant")
        role = Role(invitation.role)
        member_service.add(session, tenant_id, user_id, role)
        invitation.accepted_at = utcnow()
        invitation.accepted_by = user_id
        session.add(invitation)
        await session.flush()
        await audit.record(
            session,
            dataclasses.replace(principal, tenant_id=tenant_id, role=role),
            "invitation.accepted",
            target_type="invitation",
            target_id=invitation.id,
            data={"email": invitation.email, "role": role.value},
        )
        await webhook_events.emit(session, tenant_id, "invitation.accepted", _read(invitation))
        await webhook_events.emit(
            session,
            tenant_id,
            "member.added",
            await member_service.read(session, tenant_id, user_id),
        )
        return TenantWithRole(**TenantRead.model_validate(tenant).model_dump(), role=role)


invitation = InvitationService()
