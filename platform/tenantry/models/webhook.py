"""Outgoing webhooks: a tenant's endpoints, the events it emits, their deliveries and
every attempt of each.

Keys are `(tenant_id, id)` and references between these tables carry `tenant_id`, so a
delivery can only ever point at an endpoint and an event of its own tenant (and the
tables shard by tenant as they are).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from tenantry.models.base import StrEnumType, TenantScoped, Timestamped, utcnow


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _tenant_key() -> uuid.UUID:
    return Field(foreign_key="tenants.id", primary_key=True, ondelete="CASCADE")  # type: ignore[no-any-return]


def _id_key() -> uuid.UUID:
    return Field(default_factory=uuid.uuid4, primary_key=True)  # type: ignore[no-any-return]


class WebhookEndpoint(TenantScoped, Timestamped, table=True):
    """Where a tenant wants its events POSTed, and the secret that signs them.

    Secrets are sealed (AES-GCM under a key derived from SECRET_KEY, see
    webhooks.secrets): a worker can sign with them, nothing can read them back out.
    """

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        sa.Index("ix_webhook_endpoints_tenant_created", "tenant_id", "created_at", "id"),
    )

    tenant_id: uuid.UUID = _tenant_key()
    id: uuid.UUID = _id_key()
    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    events: list[str] = Field(default_factory=list, sa_type=JSONB)
    status: EndpointStatus = Field(
        default=EndpointStatus.ENABLED, sa_type=StrEnumType(EndpointStatus)
    )
    disabled_reason: str | None = Field(default=None, max_length=200)
    secret_sealed: str = Field(sa_type=sa.Text)
    # After a rotation the old secret signs too, until `previous_secret_expires_at`.
    previous_secret_sealed: str | None = Field(default=None, sa_type=sa.Text)
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_type=sa.DateTime(timezone=True)
    )
    # Deliveries in a row that failed for good; a success resets it.
    consecutive_failures: int = 0


class WebhookEvent(TenantScoped, table=True):
    """One event as it is sent: the exact body every delivery of it POSTs and signs."""

    __tablename__ = "webhook_events"
    __table_args__ = (sa.Index("ix_webhook_events_tenant_created", "tenant_id", "created_at"),)

    tenant_id: uuid.UUID = _tenant_key()
    id: uuid.UUID = _id_key()
    type: str = Field(max_length=50)
    body: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )


class WebhookDelivery(TenantScoped, Timestamped, table=True):
    """One event on its way to one endpoint: an outbox row, claimed under a lease.

    `lease_until` in the future means an attempt is in flight; at most
    WEBHOOK_CONCURRENCY_PER_ENDPOINT deliveries of one endpoint hold a live lease.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
            name="fk_webhook_deliveries_endpoint",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "event_id"],
            ["webhook_events.tenant_id", "webhook_events.id"],
            name="fk_webhook_deliveries_event",
            ondelete="CASCADE",
        ),
        sa.Index(
            "ix_webhook_deliveries_endpoint_created",
            "tenant_id",
            "endpoint_id",
            "created_at",
            "id",
        ),
        sa.Index(
            "ix_webhook_deliveries_endpoint_due",
            "tenant_id",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.Index(
            "ix_webhook_deliveries_pending",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.Index("ix_webhook_deliveries_event", "tenant_id", "event_id"),
    )

    tenant_id: uuid.UUID = _tenant_key()
    id: uuid.UUID = _id_key()
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str = Field(max_length=50)
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING, sa_type=StrEnumType(DeliveryStatus)
    )
    attempt_count: int = 0
    # 0: as many attempts as WEBHOOK_RETRY_SCHEDULE allows; after a redelivery, one more
    # than were made.
    max_attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    lease_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    delivered_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class WebhookAttempt(TenantScoped, table=True):
    """One POST of a delivery and what came back (the body cut at 1 KiB)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_deliveries.tenant_id", "webhook_deliveries.id"],
            name="fk_webhook_attempts_delivery",
            ondelete="CASCADE",
        ),
        sa.Index("ix_webhook_attempts_delivery", "tenant_id", "delivery_id", "at"),
    )

    tenant_id: uuid.UUID = _tenant_key()
    id: uuid.UUID = _id_key()
    delivery_id: uuid.UUID
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    status_code: int | None = None
    duration_ms: int = 0
    error: str | None = Field(default=None, max_length=500)
    response_body: str | None = Field(default=None, sa_type=sa.Text)
