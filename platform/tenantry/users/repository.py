"""Users are global (no tenant); a user's memberships are read through the RLS user arm."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.auth import principal_cache
from tenantry.db import reads_for
from tenantry.kit.repository import RowSelect
from tenantry.models import AuthSession, Membership, Role, Tenant, User
from tenantry.models.base import utcnow
from tenantry.users.schemas import Credentials, MembershipRow

_ME = sa.select(
    col(User.id),
    col(User.email),
    col(User.username),
    col(User.full_name),
    col(User.is_active),
    col(User.is_superuser),
    col(User.email_verified_at),
    col(User.created_at),
).where(col(User.id) == sa.bindparam("user_id"))
# Its own statement, not a correlated subquery of `_ME`: Citus refuses one whose FROM
# holds a reference table (users), and memberships are distributed by tenant.
_MY_TENANTS: RowSelect = (
    sa.select(
        col(Membership.tenant_id),
        col(Tenant.slug).label("tenant_slug"),
        col(Tenant.name).label("tenant_name"),
        col(Membership.role),
    )
    .join(Tenant, col(Tenant.id) == col(Membership.tenant_id))
    .where(col(Membership.user_id) == sa.bindparam("user_id"), col(Tenant.deleted_at).is_(None))
    .order_by(col(Membership.created_at), col(Membership.id))
)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        stmt = sa.select(User).where(col(User.id) == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def me(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        """The account's columns and its live tenants (oldest membership first), as rows.

        Needs `app.user_id` set to `user_id` (the RLS user arm), as `Authorize` does.
        """
        values = {"user_id": user_id}
        async with reads_for(self.session) as reads:
            users = await reads.all(_ME, values)
            if not users:
                return None
            return {**users[0], "memberships": await reads.all(_MY_TENANTS, values)}

    async def get_by_email(self, email: str) -> User | None:
        stmt = sa.select(User).where(sa.func.lower(User.email) == email.lower())
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def credentials(self, login: str) -> Credentials | None:
        """By username or email, case-insensitively; columns only (no ORM object)."""
        key = login.lower()
        stmt = (
            sa.select(col(User.id), col(User.password_hash), col(User.is_active))
            .where(sa.or_(sa.func.lower(User.username) == key, sa.func.lower(User.email) == key))
            .limit(1)
        )
        row = (await self.session.execute(stmt)).first()
        return Credentials(*row) if row else None

    async def taken(self, email: str, username: str) -> str | None:
        """Which of email / username another account already uses, if either."""
        stmt = sa.select(
            sa.exists().where(sa.func.lower(User.email) == email.lower()),
            sa.exists().where(sa.func.lower(User.username) == username.lower()),
        )
        email_taken, username_taken = (await self.session.execute(stmt)).one()
        if email_taken:
            return "email"
        if username_taken:
            return "username"
        return None

    async def set_password_hash(
        self, user_id: uuid.UUID, new_hash: str, *, if_current: str | None = None
    ) -> None:
        stmt = sa.update(User).where(col(User.id) == user_id).values(password_hash=new_hash)
        if if_current is not None:
            # A rehash on login must not overwrite a password changed meanwhile.
            stmt = stmt.where(col(User.password_hash) == if_current)
        await self.session.execute(stmt)

    async def memberships(
        self, user_id: uuid.UUID, *, tenant: str | None = None
    ) -> list[MembershipRow]:
        """The user's live tenants, oldest membership first; `tenant` is a slug or id.

        Needs `app.user_id` set to `user_id` in this transaction (the RLS user arm).
        """
        stmt = (
            sa.select(
                col(Membership.tenant_id),
                col(Tenant.slug),
                col(Tenant.name),
                col(Membership.role),
            )
            .join(Tenant, col(Tenant.id) == col(Membership.tenant_id))
            .where(col(Membership.user_id) == user_id, col(Tenant.deleted_at).is_(None))
            .order_by(col(Membership.created_at), col(Membership.id))
        )
        if tenant is not None:
            stmt = stmt.where(_tenant_matches(tenant))
        rows = (await self.session.execute(stmt)).all()
        return [MembershipRow(r[0], r[1], r[2], Role(r[3])) for r in rows]

    async def end_sessions(self, user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
        """Revoke every live session of the user, except `keep` (the caller's own)."""
        stmt = (
            sa.update(AuthSession)
            .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        )
        if keep is not None:
            stmt = stmt.where(col(AuthSession.id) != keep)
        await self.session.execute(stmt)
        principal_cache.note_user(self.session.sync_session, user_id)


def _tenant_matches(tenant: str) -> sa.ColumnElement[bool]:
    try:
        tenant_id = uuid.UUID(tenant)
    except ValueError:
        return sa.func.lower(Tenant.slug) == tenant.lower()
    return sa.or_(col(Tenant.id) == tenant_id, sa.func.lower(Tenant.slug) == tenant.lower())
