"""Schema building blocks shared by the domains."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """Reads from ORM objects and rows; unknown input fields are rejected, not ignored,
    so a client that sends `is_superuser` or `tenant_id` learns it has no effect."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)
