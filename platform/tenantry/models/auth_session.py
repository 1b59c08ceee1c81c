from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, Timestamped


class AuthSession(IDModel, Timestamped, table=True):
    """One login: the `sid` of its access tokens and the hash of its current refresh token.

    Global: a session belongs to a user and may switch between the user's tenants.
    """

    __tablename__ = "auth_sessions"

    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    # The tenant its tokens are bound to; refresh keeps it, switch-tenant changes it.
    bound_tenant_id: uuid.UUID | None = Field(
        default=None, foreign_key="tenants.id", ondelete="SET NULL"
    )
    refresh_token_hash: str = Field(max_length=64, index=True)
    # The token the last refresh rotated out, when, and the pair it was answered with
    # (encrypted under a key derived from that token): presented again within the grace
    # window it gets the same pair (sessions/service.py).
    previous_refresh_token_hash: str | None = Field(default=None, max_length=64)
    rotated_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    grace_pair: str | None = Field(default=None, sa_type=sa.Text)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
    )
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=400)
