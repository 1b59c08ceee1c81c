from __future__ import annotations

import uuid
from datetime import datetime

from tenantry.kit.schemas import ReadSchema, Schema
from tenantry.models import Role


class MemberUpdate(Schema):
    role: Role


class MemberRead(ReadSchema):
    user_id: uuid.UUID
    email: str
    username: str
    full_name: str
    role: Role
    joined_at: datetime
