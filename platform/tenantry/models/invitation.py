from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, TenantScoped, Timestamped
from tenantry.models.membership import Role


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Invitation(IDModel, TenantScoped, Timestamped, table=True):
    """A pending seat in a tenant, claimed with a token that is stored only as a hash.

    RLS also lets a transaction read the one row whose `token_hash` it names in
    `app.invitation_token_hash`: accepting happens before the tenant is known.
    """

    __tablename__ = "invitations"
    __table_args__ = (
        # One live invitation per address and tenant; revoked and accepted ones are history.
        sa.Index(
            "uq_invitations_pending_email",
            "tenant_id",
            sa.text("lower(email)"),
            unique=True,
            postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
        sa.Index("ix_invitations_tenant_created", "tenant_id", "created_at", "id"),
        sa.UniqueConstraint("tenant_id", "token_hash"),
    )

    email: str = Field(max_length=320)
    role: Role = Field(sa_type=sa.String(20))
    # Unique per tenant (a key Citus accepts); the index serves the lookup that has no
    # tenant yet. An HMAC of 178 random bits does not collide across tenants.
    token_hash: str = Field(max_length=64, index=True)
    invited_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    accepted_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    accepted_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))

    def status_at(self, now: datetime) -> InvitationStatus:
        if self.accepted_at is not None:
            return InvitationStatus.ACCEPTED
        if self.revoked_at is not None:
            return InvitationStatus.REVOKED
        if self.expires_at <= now:
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING
