from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field, field_validator, model_validator

from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import NotNull, Schema
from tenantry.models import Plan, TenantStatus
from tenantry.tenants.schemas import TenantRead


class AdminTenantRead(TenantRead):
    """A tenant as operators see it: deleted ones too, until their purge ends."""

    deleted_at: datetime | None


class AdminTenantUpdate(Schema):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    plan: Plan | None = NotNull()
    status: TenantStatus | None = NotNull()

    @field_validator("plan", "status")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave it out to keep it")
        return value

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
