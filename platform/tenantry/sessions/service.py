"""Login, refresh, logout, switch-tenant, password reset and email verification.

A session is one row in `auth_sessions`: the `sid` of its access tokens and the hash of
its one current refresh token. Access tokens live 15 minutes but are checked against
the row on every request (see auth/dependencies.py), so revoking the row ends them at
once. Refresh tokens rotate on every use; presenting one that was already rotated means
two parties hold the session's tokens, so the whole session is revoked, except for
the token just rotated out within REFRESH_GRACE_SECONDS (30 s), which is answered
with the same new pair (parallel refreshes from several tabs, see `_grace_pair`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth import account_tokens, tokens
from tenantry.auth.passwords import passwords
from tenantry.auth.principal import Principal, user_id_of
from tenantry.config import Settings
from tenantry.db import end_read_only_transaction, set_tenant_context
from tenantry.errors import BadRequest, NotFound, Unauthorized
from tenantry.kit.http import public_link
from tenantry.models import AuthSession, Role
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.observability.metrics import LOGINS
from tenantry.sessions.repository import SessionRepository
from tenantry.sessions.schemas import LoginForm, TokenPair
from tenantry.users.schemas import MembershipRow
from tenantry.users.service import user as user_service

logger = logging.getLogger("tenantry.sessions")

BAD_CREDENTIALS = "Incorrect username or password"
BAD_EMAIL_TOKEN = "Invalid or expired token"  # noqa: S105  (a message)


def _refused(outcome: str, detail: str = BAD_CREDENTIALS) -> Unauthorized:
    LOGINS.labels(outcome=outcome).inc()
    return Unauthorized(detail)


class AuthService:
    async def login(
        self,
        session: AsyncSession,
        settings: Settings,
        form: LoginForm,
        *,
        ip: str | None,
        user_agent: str | None,
    ) -> TokenPair:
        """Check the password, open a session bound to the requested (or first) tenant.

        Unknown user, wrong password and inactive account are one 401, and each costs
        one Argon2 verification. A `tenant` the user is not a member of is a 401 too,
        decided only after the password matched, so it tells nothing to anyone without it.
        """
        account = await user_service.credentials(session, form.username)
        await end_read_only_transaction(session)
        ok, new_hash = await passwords.verify(
            settings, form.password, account.password_hash if account else None
        )
        if account is None or not ok:
            raise _refused("invalid_credentials")
        if not account.is_active:
            raise _refused("inactive")
        await set_tenant_context(session, None, user_id=account.id)
        memberships = await user_service.memberships(session, account.id, tenant=form.tenant)
        if form.tenant is not None and not memberships:
            raise _refused("tenant_denied", "Incorrect username, password or tenant")
        if new_hash:
            await user_service.set_password_hash(
                session, account.id, new_hash, if_current=account.password_hash
            )
        membership = memberships[0] if memberships else None
        auth_session = SessionRepository(session).add(
            AuthSession(
                user_id=account.id,
                bound_tenant_id=membership.tenant_id if membership else None,
                refresh_token_hash="",
                expires_at=datetime.now(UTC),
                ip=ip,
                user_agent=(user_agent or "")[:400] or None,
            )
        )
        pair = self._issue(settings, auth_session, membership)
        await session.flush()
        LOGINS.labels(outcome="success").inc()
        return pair

    async def refresh(self, session: AsyncSession, settings: Settings, token: str) -> TokenPair:
        """Rotate: the presented token is spent, a new pair comes back.

        The row lock serialises two refreshes of one token: the second sees the rotated
        hash, which is exactly what a replay looks like, so it revokes the session and
        the revocation is committed with the 401 (`keep_changes`). A client racing
        itself cannot be told apart from a thief; we err on the side of the thief.
        """
        try:
            session_id = account_tokens.refresh_session_id(token)
        except tokens.InvalidToken:
            raise Unauthorized("Invalid refresh token") from None
        repo = SessionRepository(session)
        row = await repo.get_for_update(session_id)
        now = datetime.now(UTC)
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise Unauthorized("Invalid refresh token")
        presented = tokens.hash_secret(settings, token)
        if not hmac.compare_digest(row.refresh_token_hash, presented):
            replayed = _grace_pair(settings, row, token, presented, now)
            if replayed is not None:
                return replayed
            row.revoked_at = now
            logger.warning("refresh token reuse; session %s revoked", row.id)
            raise Unauthorized(
                "Refresh token reuse detected; the session is revoked", keep_changes=True
            )
        user = await user_service.account(session, row.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("Invalid refresh token")
        membership = None
        if row.bound_tenant_id is not None:
            # The role is read now: a removed member's session falls back to no tenant.
            await set_tenant_context(session, None, user_id=row.user_id)
            found = await user_service.memberships(
                session, row.user_id, tenant=str(row.bound_tenant_id)
            )
            membership = found[0] if found else None
        pair = self._issue(settings, row, membership)
        row.previous_refresh_token_hash = presented
        row.rotated_at = now
        row.grace_pair = _seal(settings, token, pair.model_dump_json().encode())
        await session.flush()
        return pair

    async def logout(self, session: AsyncSession, principal: Principal) -> None:
        """Revoke the caller's session: its access and refresh tokens stop working now."""
        assert principal.session_id is not None
        await SessionRepository(session).revoke(principal.session_id)

    async def switch_tenant(
        self, session: AsyncSession, settings: Settings, principal: Principal, tenant: str
    ) -> TokenPair:
        """Rebind the caller's session (same `sid`) to another of their tenants.

        The previous refresh token is rotated out; the previous access token keeps its
        old tenant until it expires (at most 15 minutes), still checked per request.
        """
        user_id = user_id_of(principal)
        assert principal.session_id is not None
        await set_tenant_context(session, None, user_id=user_id)
        found = await user_service.memberships(session, user_id, tenant=tenant)
        if not found:
            raise NotFound("Tenant not found")
        row = await SessionRepository(session).get_for_update(principal.session_id)
        if row is None or row.revoked_at is not None:
            raise Unauthorized("Session is no longer valid")
        pair = self._issue(settings, row, found[0])
        await session.flush()
        return pair

    async def request_password_reset(
        self, session: AsyncSession, settings: Settings, email: str
    ) -> None:
        """Queue a reset email if the account exists; the caller learns nothing either way."""
        user = await user_service.account_by_email(session, email)
        if user is None or not user.is_active:
            return
        token = account_tokens.create_reset_token(settings, user.id, user.password_hash)
        queue_email(
            session,
            EmailKind.PASSWORD_RESET,
            to=user.email,
            name=user.full_name or user.username,
            token=token,
            link=public_link(settings, "/reset-password", token=token),
            minutes=settings.password_reset_ttl_seconds // 60,
        )

    async def confirm_password_reset(
        self, session: AsyncSession, settings: Settings, token: str, new_password: str
    ) -> None:
        """Set the new password and revoke every session; the token then never matches
        again, because it carries a fingerprint of the hash it replaced."""
        try:
            claims = account_tokens.decode_email_token(settings, token, expected_type="reset")
        except tokens.InvalidToken:
            raise BadRequest(BAD_EMAIL_TOKEN) from None
        new_hash = await passwords.hash(settings, new_password)
        user = await user_service.account(session, claims.user_id, for_update=True)
        if (
            user is None
            or not user.is_active
            or not hmac.compare_digest(
                claims.fingerprint,
                account_tokens.fingerprint(settings, "password", user.password_hash),
            )
        ):
            raise BadRequest(BAD_EMAIL_TOKEN)
        user.password_hash = new_hash
        # The reset link reached the inbox, which proves the address as well.
        user.email_verified_at = user.email_verified_at or datetime.now(UTC)
        await user_service.end_sessions(session, user.id)
        await session.flush()

    async def verify_email(self, session: AsyncSession, settings: Settings, token: str) -> None:
        """Mark the address verified; repeating it is harmless (204 again)."""
        try:
            claims = account_tokens.decode_email_token(settings, token, expected_type="verify")
        except tokens.InvalidToken:
            raise BadRequest(BAD_EMAIL_TOKEN) from None
        user = await user_service.account(session, claims.user_id, for_update=True)
        if user is None or not hmac.compare_digest(
            claims.fingerprint, account_tokens.fingerprint(settings, "email", user.email.lower())
        ):
            raise BadRequest(BAD_EMAIL_TOKEN)
        if user.email_verified_at is None:
            user.email_verified_at = datetime.now(UTC)
            await session.flush()

    def _issue(
        self, settings: Settings, row: AuthSession, membership: MembershipRow | None
    ) -> TokenPair:
        """A new access token and a rotated refresh token (the row keeps only its hash)."""
        refresh_token = account_tokens.new_refresh_token(row.id)
        row.refresh_token_hash = tokens.hash_secret(settings, refresh_token)
        # Only a refresh opens a grace window (it sets these again right after).
        row.previous_refresh_token_hash = row.rotated_at = row.grace_pair = None
        row.expires_at = datetime.now(UTC) + timedelta(days=settings.refresh_token_ttl_days)
        row.bound_tenant_id = membership.tenant_id if membership else None
        role: Role | None = membership.role if membership else None
        access_token = tokens.create_access_token(
            settings,
            user_id=row.user_id,
            tenant_id=row.bound_tenant_id,
            role=role.value if role else None,
            session_id=row.id,
        )
        return TokenPair(
            access_token=access_token,
            expires_in=settings.access_token_ttl_seconds,
            refresh_token=refresh_token,
        )


def _grace_key(settings: Settings, token: str) -> AESGCM:
    secret = settings.secret_key.get_secret_value().encode()
    material = hmac.new(secret, b"refresh-grace:" + token.encode(), hashlib.sha256)
    return AESGCM(material.digest())


def _seal(settings: Settings, token: str, data: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _grace_key(settings, token).encrypt(nonce, data, None)).decode()


def _grace_pair(
    settings: Settings, row: AuthSession, token: str, presented: str, now: datetime
) -> TokenPair | None:
    """The pair the last refresh answered, if `token` is the one it rotated out and
    the grace window is still open; else None (a replay: the caller revokes).

    Several tabs of one browser refresh with the same token at once; the row lock
    serialises them, and without this every one but the first would look like a
    replay and end the session. Within REFRESH_GRACE_SECONDS they all get the same
    new pair. The pair is stored encrypted under a key derived from the rotated-out
    token, which itself lives only as a hash: the row alone reveals no credential.
    """
    if (
        row.previous_refresh_token_hash is None
        or row.rotated_at is None
        or row.grace_pair is None
        or not hmac.compare_digest(row.previous_refresh_token_hash, presented)
        or now - row.rotated_at > timedelta(seconds=settings.refresh_grace_seconds)
    ):
        return None
    raw = base64.b64decode(row.grace_pair)
    try:
        data = _grace_key(settings, token).decrypt(raw[:12], raw[12:], None)
    except InvalidTag:
        return None
    return TokenPair.model_validate_json(data)


auth = AuthService()
