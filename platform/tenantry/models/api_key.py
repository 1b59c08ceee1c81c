from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field

from tenantry.models.base import IDModel, TenantScoped, Timestamped


class ApiKey(IDModel, TenantScoped, Timestamped, table=True):
    """A tenant's machine credential. Only an HMAC of the key is kept.

    RLS also lets a transaction read the one row whose `key_hash` it names in
    `app.api_key_hash`: a request carrying a key has no tenant until the key is found.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "key_hash"),
        sa.Index("ix_api_keys_tenant_created", "tenant_id", "created_at", "id"),
    )

    name: str = Field(max_length=100)
    # The first characters of the key, so people can tell their keys apart.
    prefix: str = Field(max_length=16)
    # Unique per tenant (a key Citus accepts); the index serves the lookup that has no
    # tenant yet. An HMAC of 178 random bits does not collide across tenants.
    key_hash: str = Field(max_length=64, index=True)
    scopes: list[str] = Field(default_factory=list, sa_type=ARRAY(sa.String(16)))
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    last_used_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
