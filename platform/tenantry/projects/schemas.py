from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import NotNull, ReadSchema, Schema, trimmed

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), trimmed(200)
]
Description = Annotated[str, Field(max_length=10_000)]


class ProjectCreate(Schema):
    name: Name
    description: Description | None = None


class ProjectUpdate(Schema):
    """Only the fields sent change; `description` may be cleared with null."""

    name: Name | None = NotNull()
    description: Description | None = None

    @field_validator("name")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null")
        return value


class ProjectRead(ReadSchema):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ProjectListQuery(PageParams):
    q: str | None = Field(None, max_length=200, description="Part of the name")
