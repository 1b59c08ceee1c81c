"""Tokens that arrive by email (password reset, email verification) and refresh tokens.

Reset and verification tokens are JWTs with their own `type`, so `decode_access_token`
refuses them as bearer credentials. Each carries a fingerprint of the state it may
change, which makes it single-use without a table:

- a reset token embeds an HMAC of the user's current password hash; the reset changes
  the hash, so the same token never matches again;
- a verification token embeds an HMAC of the email it verifies.

Refresh tokens are opaque to clients: `<session id>.<random secret>`. Only the HMAC of
the whole token is stored (on the session row). Carrying the session id lets a replayed,
already-rotated token find its session and revoke it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenantry.auth import tokens
from tenantry.config import Settings


def fingerprint(settings: Settings, purpose: str, value: str) -> str:
    return tokens.hash_secret(settings, f"{purpose}:{value}")[:32]


@dataclass(frozen=True)
class EmailTokenClaims:
    user_id: uuid.UUID
    fingerprint: str


def create_reset_token(settings: Settings, user_id: uuid.UUID, password_hash: str) -> str:
    return tokens.encode(
        settings,
        {
            "sub": str(user_id),
            "type": "reset",
            "fp": fingerprint(settings, "password", password_hash),
        },
        ttl_seconds=settings.password_reset_ttl_seconds,
    )


def create_verify_token(settings: Settings, user_id: uuid.UUID, email: str) -> str:
    return tokens.encode(
        settings,
        {
            "sub": str(user_id),
            "type": "verify",
            "fp": fingerprint(settings, "email", email.lower()),
        },
        ttl_seconds=settings.email_verify_ttl_seconds,
    )


def decode_email_token(
    settings: Settings, token: str, *, expected_type: tokens.TokenType
) -> EmailTokenClaims:
    payload = tokens.decode(settings, token, expected_type=expected_type)
    sub, fp = payload.get("sub"), payload.get("fp")
    if not isinstance(sub, str) or not isinstance(fp, str):
        raise tokens.InvalidToken("malformed claims")  # the right key, the wrong types
    try:
        return EmailTokenClaims(user_id=uuid.UUID(sub), fingerprint=fp)
    except (ValueError, TypeError) as exc:
        raise tokens.InvalidToken("malformed claims") from exc


def new_refresh_token(session_id: uuid.UUID) -> str:
    return f"{session_id.hex}.{tokens.new_secret()}"


def refresh_session_id(token: str) -> uuid.UUID:
    """The session a refresh token claims to belong to (not yet proof of anything)."""
    head, sep, secret = token.partition(".")
    if not sep or not secret:
        raise tokens.InvalidToken("malformed refresh token")
    try:
        return uuid.UUID(hex=head)
    except ValueError as exc:
        raise tokens.InvalidToken("malformed refresh token") from exc
