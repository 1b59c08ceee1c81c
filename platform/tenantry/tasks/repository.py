from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlmodel import col

from tenantry.kit.keyset import Key, KeyType, Sort, fetch_page
from tenantry.kit.repository import RowSelect, TenantRepository, like_pattern
from tenantry.models import Project, Task
from tenantry.tasks.schemas import TaskListQuery, TaskSort

COLUMNS = (
    col(Task.id),
    col(Task.project_id),
    col(Task.title),
    col(Task.description),
    col(Task.status),
    col(Task.priority),
    col(Task.assignee_id),
    col(Task.due_date),
    col(Task.created_at),
    col(Task.updated_at),
)


def _sort(sort: TaskSort, column: str, type: KeyType, *, nullable: bool = False) -> Sort:
    keys = (Key(getattr(Task, column), type, column, nullable), Key(col(Task.id), uuid.UUID, "id"))
    # Undated tasks come last in both directions.
    return Sort(keys, descending=sort.value.startswith("-"), name=sort.value, nulls="last")


SORTS = {
    TaskSort.CREATED_AT: _sort(TaskSort.CREATED_AT, "created_at", datetime),
    TaskSort.CREATED_AT_DESC: _sort(TaskSort.CREATED_AT_DESC, "created_at", datetime),
    TaskSort.PRIORITY: _sort(TaskSort.PRIORITY, "priority", int),
    TaskSort.PRIORITY_DESC: _sort(TaskSort.PRIORITY_DESC, "priority", int),
    TaskSort.DUE_DATE: _sort(TaskSort.DUE_DATE, "due_date", date, nullable=True),
    TaskSort.DUE_DATE_DESC: _sort(TaskSort.DUE_DATE_DESC, "due_date", date, nullable=True),
}


class TaskRepository(TenantRepository[Task]):
    model = Task

    def select_columns(self) -> RowSelect:
        return sa.select(*COLUMNS).where(col(Task.tenant_id) == self.tenant_id)

    async def get_row(self, id: uuid.UUID) -> RowMapping | None:
        stmt = self.select_columns().where(col(Task.id) == id)
        return (await self.session.execute(stmt)).mappings().first()

    async def list_rows(
        self, project_id: uuid.UUID, query: TaskListQuery
    ) -> tuple[Sequence[RowMapping], str | None]:
        """One page in `query.sort` order, `id` breaking ties, filtered by the rest."""
        stmt = self.select_columns().where(col(Task.project_id) == project_id)
        if query.status is not None:
            stmt = stmt.where(col(Task.status) == query.status)
        if query.assignee_id is not None:
            stmt = stmt.where(col(Task.assignee_id) == query.assignee_id)
        if query.q:
            pattern = like_pattern(query.q)
            stmt = stmt.where(
                sa.or_(col(Task.title).ilike(pattern), col(Task.description).ilike(pattern))
            )
        return await fetch_page(self.session, stmt, SORTS[query.sort], query, result="mappings")

    def stream_statement(self) -> RowSelect:
        """Every task of the tenant with its project's name, in a stable order."""
        return (
            sa.select(*COLUMNS, col(Project.name).label("project_name"))
            .join(
                Project,
                sa.and_(
                    col(Project.tenant_id) == col(Task.tenant_id),
                    col(Project.id) == col(Task.project_id),
                ),
            )
            .where(col(Task.tenant_id) == self.tenant_id)
            .order_by(col(Task.created_at), col(Task.id))
        )
