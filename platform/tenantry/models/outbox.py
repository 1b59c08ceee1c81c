from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, StrEnumType, Timestamped, utcnow


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class EmailOutbox(IDModel, Timestamped, table=True):
    """An email written in the same transaction as the change that caused it.

    Global so one relay can sweep every tenant's unsent mail; `tenant_id` is kept
    (without RLS) only so a tenant purge can remove its rows.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (
        sa.Index(
            "ix_email_outbox_pending",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )

    tenant_ref: uuid.UUID | None = Field(default=None, index=True)
    kind: str = Field(max_length=50)
    to_email: str = Field(max_length=320)
    subject: str = Field(max_length=300)
    text_body: str = Field(sa_type=sa.Text)
    html_body: str | None = Field(default=None, sa_type=sa.Text)
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=StrEnumType(OutboxStatus))
    attempts: int = 0
    next_attempt_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
    )
    last_error: str | None = Field(default=None, max_length=500)
    sent_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
    )
