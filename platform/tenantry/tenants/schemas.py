from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from tenantry.kit.schemas import ReadSchema, Schema
from tenantry.models import Plan, Role, TenantStatus

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")

# Slugs that would read as ours in URLs, emails or subdomains.
RESERVED_SLUGS = frozenset(
    {
        "about", "account", "accounts", "admin", "administrator", "api", "app", "apps",
        "assets", "auth", "billing", "blog", "cdn", "dashboard", "default", "dev", "docs",
        "email", "health", "help", "internal", "invitations", "login", "logout", "mail",
        "me", "metrics", "new", "null", "operator", "operators", "root", "security",
        "settings", "signup", "static", "status", "support", "system", "tenant", "tenantry",
        "tenants", "test", "undefined", "user", "users", "www",
    }
)  # fmt: skip

TenantName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def check_slug(value: str) -> str:
    if not SLUG_PATTERN.match(value):
        raise ValueError(
            "must be 3–63 characters of lowercase letters, digits and hyphens,"
            " starting and ending with a letter or digit"
        )
    if value in RESERVED_SLUGS:
        raise ValueError("is reserved; choose another slug")
    return value


class TenantCreate(Schema):
    name: TenantName
    slug: str = Field(description="Lowercase, URL-safe, unique; e.g. `acme-corp`")

    @field_validator("slug")
    @classmethod
    def _valid_slug(cls, value: str) -> str:
        return check_slug(value)


class TenantUpdate(Schema):
    name: TenantName | None = None


class TenantRead(ReadSchema):
    id: uuid.UUID
    name: str
    slug: str
    plan: Plan
    status: TenantStatus
    created_at: datetime
    updated_at: datetime


class TenantWithRole(TenantRead):
    """A tenant as one of its members sees it in their list."""

    role: Role


class TenantDeleted(ReadSchema):
    id: uuid.UUID
    slug: str
    deleted_at: datetime
