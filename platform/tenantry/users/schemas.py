"""Users: sign-up input, the public user, and the caller's own view with memberships."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, NamedTuple

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    computed_field,
    field_validator,
)

from tenantry.auth.passwords import Password
from tenantry.kit.schemas import Email, ReadSchema, Schema, not_null
from tenantry.models import Role

_USERNAME = re.compile(r"[A-Za-z0-9_-]{3,50}")


def check_username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise ValueError("Username must be 3–50 characters of letters, digits, '_' or '-'")
    return value


Username = Annotated[
    str,
    AfterValidator(check_username),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^{_USERNAME.pattern}$",
            "minLength": 3,
            "maxLength": 50,
            "description": "3–50 letters (A–Z, a–z), digits, '_' or '-'",
        }
    ),
]


class UserCreate(Schema):
    email: Email = Field(max_length=320)
    username: Username
    password: Password
    full_name: str = Field(default="", max_length=200)


class UserUpdate(Schema):
    """Only these; `email`, `is_superuser`, `is_active`, `id`… are rejected (422).
    A new `password` needs the `current_password`."""

    model_config = ConfigDict(
        json_schema_extra={"dependentRequired": {"password": ["current_password"]}}
    )

    full_name: str | None = Field(default=None, max_length=200)
    password: Password | None = None
    current_password: str | None = Field(
        default=None, min_length=1, max_length=1024, json_schema_extra=not_null
    )

    @field_validator("current_password")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("cannot be null; leave it out")
        return value


class UserRead(ReadSchema):
    id: uuid.UUID
    email: str
    username: str
    full_name: str
    is_active: bool
    is_superuser: bool
    email_verified_at: datetime | None
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class MembershipSummary(ReadSchema):
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    role: Role


class UserMe(UserRead):
    memberships: list[MembershipSummary]


class Credentials(NamedTuple):
    id: uuid.UUID
    password_hash: str
    is_active: bool


class MembershipRow(NamedTuple):
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    role: Role
