from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from tenantry.models.base import IDModel, TenantScoped, utcnow


class AuditEvent(IDModel, TenantScoped, table=True):
    """Who did what, when and from where, written in the transaction that did it."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_tenant_created", "tenant_id", "created_at", "id"),)

    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )
    actor_user_id: uuid.UUID | None = Field(default=None)
    actor_api_key_id: uuid.UUID | None = Field(default=None)
    action: str = Field(max_length=100)
    target_type: str | None = Field(default=None, max_length=50)
    target_id: str | None = Field(default=None, max_length=100)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=400)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
