from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, TenantScoped, Timestamped


class Project(IDModel, TenantScoped, Timestamped, table=True):
    """A tenant's project; its tasks go with it (FK cascade on (tenant_id, project_id))."""

    __tablename__ = "projects"
    __table_args__ = (sa.Index("ix_projects_tenant_created", "tenant_id", "created_at", "id"),)

    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_type=sa.Text)
