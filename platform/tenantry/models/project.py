from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, TenantScoped, Timestamped


class Project(IDModel, TenantScoped, Timestamped, table=True):
    """A tenant's project; its tasks go with it (FK cascade)."""

    __tablename__ = "projects"
    __table_args__ = (
        # Target of the tasks' composite foreign key, so a task can only ever point at a
        # project of its own tenant; it also serves lookups by id within a tenant.
        sa.UniqueConstraint("tenant_id", "id"),
        sa.Index("ix_projects_tenant_created", "tenant_id", "created_at", "id"),
    )

    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_type=sa.Text)
