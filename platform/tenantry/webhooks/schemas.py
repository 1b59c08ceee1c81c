from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints, WithJsonSchema, field_validator

from tenantry.kit.http import MAX_URL_LENGTH
from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import NotNull, ReadSchema, Schema
from tenantry.models import DeliveryStatus, EndpointStatus

ALL = "*"
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_URL_LENGTH),
    # What the document can say; that the host resolves to a public address is checked
    # when the URL is saved (422) and again at each delivery.
    WithJsonSchema(
        {
            "type": "string",
            "format": "uri",
            "maxLength": MAX_URL_LENGTH,
            "pattern": r"^https?://[^\s/@]+",
            "description": "An https URL (http outside production) without user info, "
            "whose host is a public address",
        }
    ),
]
Description = Annotated[str, Field(max_length=500)]
EventName = Literal[
    "*",
    "project.created",
    "project.updated",
    "project.deleted",
    "task.created",
    "task.updated",
    "task.deleted",
    "comment.created",
    "comment.deleted",
    "member.added",
    "member.updated",
    "member.removed",
    "invitation.created",
    "invitation.accepted",
    "api_key.created",
    "api_key.revoked",
    "report.succeeded",
    "report.failed",
    "tenant.updated",
    "webhook.ping",
]
Events = Annotated[list[EventName], Field(min_length=1, max_length=len(get_args(EventName)))]


def _normalise(events: list[str]) -> list[str]:
    """`*` subsumes the rest; duplicates go, the order stays."""
    return [ALL] if ALL in events else list(dict.fromkeys(events))


class WebhookCreate(Schema):
    url: Url
    events: Events
    description: Description | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _normalise(value)


class WebhookUpdate(Schema):
    """Only the fields sent change; `description` may be cleared with null."""

    url: Url | None = NotNull()
    events: Events | None = NotNull()
    description: Description | None = None
    status: EndpointStatus | None = NotNull()

    @field_validator("url", "events", "status")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _normalise(value)


class WebhookRead(ReadSchema):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    status: EndpointStatus
    # Why the system disabled it (a 410, failures in a row); null otherwise.
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="Shown only here and on rotation")


class SecretRotated(ReadSchema):
    secret: str = Field(description="Shown only here; the previous secret signs too for 24 h")


class DeliveryQueued(ReadSchema):
    delivery_id: uuid.UUID


class DeliveryRead(ReadSchema):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class AttemptRead(ReadSchema):
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_body: str | None = Field(description="The first 1 KiB of the answer")


class DeliveryDetail(DeliveryRead):
    attempts: list[AttemptRead]


class DeliveryListQuery(PageParams):
    status: DeliveryStatus | None = Field(None, description="Only deliveries in this state")
