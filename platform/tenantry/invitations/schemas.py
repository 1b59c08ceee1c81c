from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import Email, ReadSchema, Schema, trimmed
from tenantry.models import InvitationStatus, Role


class InvitationCreate(Schema):
    email: Email
    role: Role = Role.MEMBER


class InvitationAccept(Schema):
    token: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), trimmed(200)
    ]


class InvitationRead(ReadSchema):
    id: uuid.UUID
    email: str
    role: Role
    status: InvitationStatus
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: uuid.UUID | None
    revoked_at: datetime | None


class InvitationListQuery(PageParams):
    status: InvitationStatus | None = Field(None, description="Only this state")
