from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import Schema
from tenantry.models import Plan, TenantStatus
from tenantry.tenants.schemas import TenantRead


class AdminTenantRead(TenantRead):
    """A tenant as operators see it: deleted ones too, until their purge ends."""

    deleted_at: datetime | None


class AdminTenantUpdate(Schema):
    plan: Plan | None = None
    status: TenantStatus | None = None

    @model_validator(mode="after")
    def _something(self) -> AdminTenantUpdate:
        if self.plan is None and self.status is None:
            raise ValueError("give a plan, a status or both")
        return self


class AdminTenantQuery(PageParams):
    status: TenantStatus | None = None
    plan: Plan | None = None
    q: str | None = Field(
        None, min_length=1, max_length=100, description="Part of the name or slug"
    )
    include_deleted: bool = Field(False, description="Also deleted, not yet purged")
