from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, StrEnumType, Timestamped


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Tenant(IDModel, Timestamped, table=True):
    """A customer organisation. Global: it is the boundary, not inside one."""

    __tablename__ = "tenants"

    name: str = Field(max_length=200)
    slug: str = Field(max_length=63, unique=True)
    plan: Plan = Field(default=Plan.FREE, sa_type=StrEnumType(Plan))
    status: TenantStatus = Field(default=TenantStatus.ACTIVE, sa_type=StrEnumType(TenantStatus))
    # Set when the owner deletes the tenant; the purge job removes the rest.
    deleted_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
    )
