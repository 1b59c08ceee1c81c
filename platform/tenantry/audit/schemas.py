from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import ReadSchema


class AuditEventRead(ReadSchema):
    id: uuid.UUID
    created_at: datetime
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    data: dict[str, Any]


class AuditFilters(ReadSchema):
    action: str | None = None
    actor_user_id: uuid.UUID | None = None
    target_type: str | None = None
    target_id: str | None = None


class AuditQuery(PageParams):
    action: str | None = Field(
        None, max_length=100, description="An action, or a prefix ending in '.'"
    )
    actor_user_id: uuid.UUID | None = None
    target_type: str | None = Field(None, max_length=50)
    target_id: str | None = Field(None, max_length=100)
