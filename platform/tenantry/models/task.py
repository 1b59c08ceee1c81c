from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, TenantScoped, Timestamped


class TaskStatus(StrEnum):
    TODO = "todo"
    DOING = "doing"
    DONE = "done"


class Task(IDModel, TenantScoped, Timestamped, table=True):
    """A unit of work in a project.

    Both references are composite with `tenant_id`, so the database itself refuses a
    task that points at another tenant's project or at someone who is not a member:
    - (tenant_id, project_id) → projects ON DELETE CASCADE;
    - (tenant_id, assignee_id) → memberships(tenant_id, user_id), no action: removing a
      member unassigns their tasks first, in the members service's transaction (Citus
      refuses ON DELETE SET NULL on a key that includes the distribution column).
    Every index leads with tenant_id; lists are per project, so most add project_id.
    `q` (ILIKE) is applied within one project's rows found by those indexes: under
    forced RLS PostgreSQL only pushes LEAKPROOF operators into an index scan, and
    ILIKE is not, so a pg_trgm index would never be used by the app role.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "project_id"],
            ["projects.tenant_id", "projects.id"],
            name="fk_tasks_project",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "assignee_id"],
            ["memberships.tenant_id", "memberships.user_id"],
            name="fk_tasks_assignee_membership",
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name="priority_range"),
        sa.CheckConstraint("status IN ('todo', 'doing', 'done')", name="status_known"),
        sa.Index("ix_tasks_project_created", "tenant_id", "project_id", "created_at", "id"),
        sa.Index("ix_tasks_project_priority", "tenant_id", "project_id", "priority", "id"),
        # Serves due_date in both directions: dated rows by a forward or backward scan,
        # undated ones (read separately, they sort last) by `due_date IS NULL`.
        sa.Index("ix_tasks_project_due", "tenant_id", "project_id", "due_date", "id"),
        sa.Index("ix_tasks_tenant_assignee", "tenant_id", "assignee_id"),
    )

    project_id: uuid.UUID
    title: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_type=sa.Text)
    status: TaskStatus = Field(default=TaskStatus.TODO, sa_type=sa.String(10))
    priority: int = Field(default=2)
    assignee_id: uuid.UUID | None = Field(default=None)
    due_date: date | None = Field(default=None)
