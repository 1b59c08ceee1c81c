"""Invitations of the current tenant, and the one lookup by token hash before any tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import Invitation, InvitationStatus

# Only the lookup arm of the invitations policy can match while app.tenant_id is empty.
_SET_LOOKUP = sa.text(
    "SELECT set_app_context(p_tenant_id => '', p_invitation_token_hash => :token_hash)"
)
_CLEAR_LOOKUP = sa.text("SELECT set_app_context(p_invitation_token_hash => '')")


async def find_by_token_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    """The invitation a token names, in whichever tenant; the setting is cleared after."""
    await session.execute(_SET_LOOKUP, {"token_hash": token_hash})
    stmt = sa.select(Invitation).where(col(Invitation.token_hash) == token_hash)
    invitation = (await session.execute(stmt)).scalar_one_or_none()
    await session.execute(_CLEAR_LOOKUP)
    return invitation


NEWEST_FIRST = by_created(col(Invitation.created_at), col(Invitation.id))


class InvitationRepository(TenantRepository[Invitation]):
    model = Invitation

    async def insert_unless_pending(self, invitation: Invitation) -> bool:
        """Insert, or answer False when the address already has a live invitation (the
        partial unique index decides, so two concurrent invites cannot both win)."""
        invitation.tenant_id = self.tenant_id
        stmt = (
            insert(Invitation)
            .values(**invitation.model_dump())
            .on_conflict_do_nothing()
            .returning(col(Invitation.id))
        )
        return (await self.session.execute(stmt)).first() is not None

    async def get_for_update(self, invitation_id: Any) -> Invitation | None:
        """Locked and re-read: a concurrent accept that committed first is seen, not cached."""
        stmt = (
            self.select()
            .where(col(Invitation.id) == invitation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def open_for_email(self, email: str) -> Invitation | None:
        """The one invitation to this address that is neither accepted nor revoked."""
        stmt = (
            self.select()
            .where(
                sa.func.lower(col(Invitation.email)) == email.lower(),
                col(Invitation.accepted_at).is_(None),
                col(Invitation.revoked_at).is_(None),
            )
            .with_for_update()
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(
        self, params: PageParams, status: InvitationStatus | None, now: datetime
    ) -> tuple[Sequence[Any], str | None]:
        stmt = self.select()
        accepted, revoked = col(Invitation.accepted_at), col(Invitation.revoked_at)
        expires = col(Invitation.expires_at)
        if status is InvitationStatus.ACCEPTED:
            stmt = stmt.where(accepted.is_not(None))
        elif status is InvitationStatus.REVOKED:
            stmt = stmt.where(accepted.is_(None), revoked.is_not(None))
        elif status is InvitationStatus.EXPIRED:
            stmt = stmt.where(accepted.is_(None), revoked.is_(None), expires <= now)
        elif status is InvitationStatus.PENDING:
            stmt = stmt.where(accepted.is_(None), revoked.is_(None), expires > now)
        return await fetch_page(self.session, stmt, NEWEST_FIRST, params)
