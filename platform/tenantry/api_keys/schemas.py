from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints, field_validator

from tenantry.auth.principal import Scope
from tenantry.kit.schemas import ReadSchema, Schema, trimmed


class ApiKeyCreate(Schema):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), trimmed(100)
    ]
    scopes: list[Scope] = Field(min_length=1, max_length=10, description="`read` and/or `write`")
    expires_in_days: StrictInt | None = Field(default=None, ge=1, le=3650)

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, value: list[Scope]) -> list[Scope]:
        return sorted(set(value))


class ApiKeyRead(ReadSchema):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope]
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    """The only answer that ever carries the key: store it now, it cannot be shown again."""

    key: str
