"""Users: sign-up input, the public user, and the caller's own view with memberships."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import NamedTuple

from pydantic import EmailStr, Field, computed_field, field_validator

from tenantry.auth.passwords import check_password
from tenantry.kit.schemas import ReadSchema, Schema
from tenantry.models import Role

_USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,50}$")


def check_username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise ValueError("Username must be 3–50 characters of letters, digits, '_' or '-'")
    return value


class UserCreate(Schema):
    email: EmailStr = Field(max_length=320)
    username: str
    password: str
    full_name: str = Field(default="", max_length=200)

    _username = field_validator("username")(check_username)
    _password = field_validator("password")(check_password)


class UserUpdate(Schema):
    """Only these; `email`, `is_superuser`, `is_active`, `id`… are rejected (422)."""

    full_name: str | None = Field(default=None, max_length=200)
    password: str | None = None
    current_password: str | None = Field(default=None, max_length=1024)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else check_password(value)


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
