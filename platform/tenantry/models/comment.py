from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import TenantScoped, Timestamped


class Comment(TenantScoped, Timestamped, table=True):
    """A remark on a task, by its author; it goes with the task (FK cascade).

    Keyed `(tenant_id, id)` for Citus. `tasks` has no `(tenant_id, id)` key yet, so the
    task reference is a plain foreign key; the service checks the task is the tenant's.
    """

    __tablename__ = "comments"
    __table_args__ = (
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.CheckConstraint("char_length(body) BETWEEN 1 AND 10000", name="body_length"),
        # The list: one task's comments, oldest first.
        sa.Index("ix_comments_task_created", "tenant_id", "task_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    task_id: uuid.UUID
    author_id: uuid.UUID = Field(foreign_key="users.id")
    body: str = Field(sa_type=sa.Text)
