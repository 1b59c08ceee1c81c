"""Sign-up, the caller's own account, and changing it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth import account_tokens
from tenantry.auth.passwords import passwords
from tenantry.auth.principal import Principal, user_id_of
from tenantry.config import Settings
from tenantry.db import end_read_only_transaction
from tenantry.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.http import public_link
from tenantry.models import User
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.users.repository import UserRepository
from tenantry.users.schemas import (
    Credentials,
    MembershipRow,
    UserCreate,
    UserMe,
    UserUpdate,
)


def _conflict(which: str) -> Conflict:
    return Conflict(f"A user with this {which} already exists")


class UserService:
    async def create(
        self,
        session: AsyncSession,
        settings: Settings,
        data: UserCreate,
        *,
        is_superuser: bool = False,
        verified: bool = False,
        welcome: bool = True,
    ) -> User:
        """A new account and, in the same transaction, its welcome email."""
        # Hash before touching the database: no pooled connection waits on the CPU.
        password_hash = await passwords.hash(settings, data.password)
        repo = UserRepository(session)
        taken = await repo.taken(data.email, data.username)
        if taken:
            raise _conflict(taken)
        user = User(
            email=str(data.email),
            username=data.username,
            full_name=data.full_name,
            password_hash=password_hash,
            is_superuser=is_superuser,
            email_verified_at=datetime.now(UTC) if verified else None,
        )
        session.add(user)
        try:
            await session.flush()
        except sqlalchemy.exc.IntegrityError as exc:
            # Two sign-ups raced past the check; the unique indexes decide.
            raise _conflict("username" if "username" in str(exc.orig) else "email") from None
        if welcome:
            token = account_tokens.create_verify_token(settings, user.id, user.email)
            queue_email(
                session,
                EmailKind.WELCOME,
                to=user.email,
                name=user.full_name or user.username,
                token=token,
                link=public_link(settings, "/verify-email", token=token),
            )
        return user

    async def get_me(self, session: AsyncSession, principal: Principal) -> UserMe:
        found = await UserRepository(session).me(user_id_of(principal))
        if found is None:
            raise NotFound("User not found")
        return UserMe.model_validate(found)

    async def update_me(
        self, session: AsyncSession, settings: Settings, principal: Principal, data: UserUpdate
    ) -> UserMe:
        """`full_name`; a new `password` needs `current_password` and ends other sessions."""
        user_id = user_id_of(principal)
        repo = UserRepository(session)
        new_hash: str | None = None
        if data.password is not None:
            if not data.current_password:
                raise Unprocessable(
                    "current_password is required to change the password",
                    field="body.current_password",
                )
            current = await repo.get(user_id)
            if current is None:
                raise NotFound("User not found")
            old_hash = current.password_hash
            await end_read_only_transaction(session)
            ok, _ = await passwords.verify(settings, data.current_password, old_hash)
            if not ok:
                raise Unprocessable("current_password is incorrect", field="body.current_password")
            new_hash = await passwords.hash(settings, data.password)
        user = await repo.get(user_id, for_update=True)
        if user is None:
            raise NotFound("User not found")
        if data.full_name is not None:
            user.full_name = data.full_name
        if new_hash is not None:
            user.password_hash = new_hash
            # Whoever else holds a session (maybe the reason for the change) is out now.
            await repo.end_sessions(user_id, keep=principal.session_id)
        await session.flush()
        return await self.get_me(session, principal)

    # Accounts as the sessions domain needs them (login, refresh, reset): it goes
    # through this service, never through the users repository.

    async def account(
        self, session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
    ) -> User | None:
        return await UserRepository(session).get(user_id, for_update=for_update)

    async def account_by_email(self, session: AsyncSession, email: str) -> User | None:
        return await UserRepository(session).get_by_email(email)

    async def credentials(self, session: AsyncSession, login: str) -> Credentials | None:
        return await UserRepository(session).credentials(login)

    async def set_password_hash(
        self, session: AsyncSession, user_id: uuid.UUID, new_hash: str, *, if_current: str
    ) -> None:
        await UserRepository(session).set_password_hash(user_id, new_hash, if_current=if_current)

    async def memberships(
        self, session: AsyncSession, user_id: uuid.UUID, *, tenant: str | None = None
    ) -> list[MembershipRow]:
        return await UserRepository(session).memberships(user_id, tenant=tenant)

    async def end_sessions(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        """Revoke every live session of the user (a password reset)."""
        await UserRepository(session).end_sessions(user_id)


user = UserService()
