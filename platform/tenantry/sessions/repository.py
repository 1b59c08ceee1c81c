"""Auth sessions: one row per login, global (a session may move between tenants)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.auth import principal_cache
from tenantry.models import AuthSession
from tenantry.models.base import utcnow


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, auth_session: AuthSession) -> AuthSession:
        self.session.add(auth_session)
        return auth_session

    async def get_for_update(self, session_id: uuid.UUID) -> AuthSession | None:
        """Locks the row: concurrent refreshes of one token serialise here."""
        stmt = sa.select(AuthSession).where(col(AuthSession.id) == session_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def revoke(self, session_id: uuid.UUID) -> None:
        revoked = await self.session.execute(
            sa.update(AuthSession)
            .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
            .values(revoked_at=utcnow())
            .returning(col(AuthSession.user_id))
        )
        for user_id in revoked.scalars():
            principal_cache.note_user(self.session.sync_session, user_id)
