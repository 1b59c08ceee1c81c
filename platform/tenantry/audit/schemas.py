from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

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
