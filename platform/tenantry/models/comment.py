from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import TenantScoped, Timestamped


class Comment(TenantScoped, Timestamped, table=True):
    """A remark on a task, by its author; it goes with the task (FK cascade).

    Keyed `(tenant_id, id)` for Citus, and the task reference is composite,
    `(tenant_id, task_id) → tasks (tenant_id, id)`, so a comment can only ever point at a
    task of its own tenant.
    """

    __tablename__ = "comments"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "task_id"],
            ["tasks.tenant_id", "tasks.id"],
            name="fk_comments_task",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("char_length(body) BETWEEN 1 AND 10000", name="body_length"),
        # The list: one task's comments, oldest first.
        sa.Index("ix_comments_task_created", "tenant_id", "task_id", "created_at", "id"),
    )

    # With TenantScoped's tenant_id: the key (tenant_id, id).
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    task_id: uuid.UUID
    author_id: uuid.UUID = Field(foreign_key="users.id")
    body: str = Field(sa_type=sa.Text)
