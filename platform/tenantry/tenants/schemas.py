from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from tenantry.kit.schemas import ReadSchema, Schema, trimmed
from tenantry.models import Plan, Role, TenantStatus

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")

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

TenantName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), trimmed(200)
]


def check_slug(value: str) -> str:
    if not SLUG_PATTERN.fullmatch(value):
        raise ValueError(
            "must be 3–63 characters of lowercase letters, digits and hyphens,"
            " starting and ending with a letter or digit"
        )
    if value in RESERVED_SLUGS:
        raise ValueError("is reserved; choose another slug")
    return value


Slug = Annotated[
    str,
    AfterValidator(check_slug),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 3,
            "maxLength": 63,
            # The reserved words are refused too, so the schema says so.
            "pattern": f"^(?!(?:{'|'.join(sorted(RESERVED_SLUGS))})$){SLUG_PATTERN.pattern}$",
            "description": "3–63 lowercase letters, digits and hyphens, starting and ending "
            "with a letter or digit; unique; e.g. `acme-corp`",
        }
    ),
]


class TenantCreate(Schema):
    name: TenantName
    slug: Slug


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
