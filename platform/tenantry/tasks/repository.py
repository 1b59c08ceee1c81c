from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import ReturningDelete
from sqlmodel import col

from tenantry.db import Rider, reads_for, writes_for
from tenantry.kit.keyset import Key, KeyType, Sort, fetch_page
from tenantry.kit.repository import RowSelect, TenantRepository, like_pattern
from tenantry.models import Project, Task
from tenantry.tasks.schemas import TASK_FIELDS, TaskListQuery, TaskSort

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


@functools.cache
def _by_id() -> RowSelect:
    return sa.select(*COLUMNS).where(
        col(Task.tenant_id) == sa.bindparam("tenant_id"), col(Task.id) == sa.bindparam("id")
    )


@functools.cache
def _locked() -> RowSelect:
    return _by_id().with_for_update()


# What a new task's INSERT sets; every value comes from the service (the id and both
# timestamps too), so the row it returns is the one it was given.
_INSERTED = ("tenant_id", *TASK_FIELDS)


@functools.cache
def _insert() -> sa.Insert:
    # Placeholders are named apart from the columns (SQLAlchemy reserves those names).
    values: dict[str, Any] = {name: sa.bindparam(f"v_{name}") for name in _INSERTED}
    return sa.insert(Task).values(values).returning(*COLUMNS)


@functools.cache
def _update(fields: tuple[str, ...]) -> sa.Update:
    """One template per set of changed fields (sorted), `updated_at` always."""
    values: dict[str, Any] = {name: sa.bindparam(f"v_{name}") for name in (*fields, "updated_at")}
    return (
        sa.update(Task)
        .where(col(Task.tenant_id) == sa.bindparam("tenant_id"), col(Task.id) == sa.bindparam("id"))
        .values(values)
        .returning(*COLUMNS)
    )


@functools.cache
def _delete() -> ReturningDelete[uuid.UUID, str]:
    return (
        sa.delete(Task)
        .where(col(Task.tenant_id) == sa.bindparam("tenant_id"), col(Task.id) == sa.bindparam("id"))
        .returning(col(Task.project_id), col(Task.title))
    )


@functools.cache
def _in_project(status: bool, assignee: bool, text: bool) -> RowSelect:
    """The list's statement for one combination of filters, built once: a page binds
    values and builds no SQL (see `fetch_page`). Each filter of `TaskListQuery` must
    appear here and in `list_rows`, which a test checks field by field."""
    stmt = sa.select(*COLUMNS).where(
        col(Task.tenant_id) == sa.bindparam("tenant_id"),
        col(Task.project_id) == sa.bindparam("project_id"),
    )
    if status:
        stmt = stmt.where(col(Task.status) == sa.bindparam("status"))
    if assignee:
        stmt = stmt.where(col(Task.assignee_id) == sa.bindparam("assignee_id"))
    if text:
        pattern = sa.bindparam("pattern", type_=sa.String())
        stmt = stmt.where(
            sa.or_(col(Task.title).ilike(pattern), col(Task.description).ilike(pattern))
        )
    return stmt


class TaskRepository(TenantRepository[Task]):
    """Reads through `reads_for`; writes through `writes_for` with statements built
    once, each a single round trip that answers the row as the API shows it."""

    model = Task

    async def get_row(self, id: uuid.UUID) -> dict[str, Any] | None:
        async with reads_for(self.session) as reads:
            rows = await reads.all(_by_id(), {"tenant_id": self.tenant_id, "id": id})
        return rows[0] if rows else None

    async def lock_row(self, id: uuid.UUID) -> dict[str, Any] | None:
        """The task, locked until the unit of work ends (an `If-Match` checked on it
        still holds at the write)."""
        writes = await writes_for(self.session)
        return await writes.one(_locked(), {"tenant_id": self.tenant_id, "id": id})

    async def insert_row(
        self, values: dict[str, Any], riders: Sequence[Rider] = ()
    ) -> dict[str, Any]:
        """Insert a task from its fields (`tenant_id` is the repository's); the row, with
        what the riders return."""
        writes = await writes_for(self.session)
        row = await writes.one(
            _insert(),
            {f"v_{name}": values.get(name) for name in _INSERTED} | {"v_tenant_id": self.tenant_id},
            riders=riders,
        )
        assert row is not None
        return row

    async def update_row(
        self, id: uuid.UUID, changes: dict[str, Any], at: datetime, riders: Sequence[Rider] = ()
    ) -> dict[str, Any] | None:
        """Set `changes` and `updated_at`; the row as it now is (with what the riders
        return), None when there is none."""
        values = {f"v_{name}": value for name, value in changes.items()}
        values |= {"tenant_id": self.tenant_id, "id": id, "v_updated_at": at}
        writes = await writes_for(self.session)
        return await writes.one(_update(tuple(sorted(changes))), values, riders=riders)

    async def delete_row(
        self, id: uuid.UUID, riders: Sequence[Rider] = ()
    ) -> dict[str, Any] | None:
        """Delete the task; its `project_id` and `title` (with what the riders return),
        None when there was none."""
        writes = await writes_for(self.session)
        return await writes.one(_delete(), {"tenant_id": self.tenant_id, "id": id}, riders=riders)

    async def list_rows(
        self, project_id: uuid.UUID, query: TaskListQuery
    ) -> tuple[Sequence[dict[str, Any]], str | None]:
        """One page in `query.sort` order, `id` breaking ties, filtered by the rest."""
        stmt = _in_project(query.status is not None, query.assignee_id is not None, bool(query.q))
        values = {
            "tenant_id": self.tenant_id,
            "project_id": project_id,
            "status": query.status,
            "assignee_id": query.assignee_id,
            "pattern": like_pattern(query.q) if query.q else None,
        }
        async with reads_for(self.session) as reads:
            return await fetch_page(reads, stmt, SORTS[query.sort], query, values=values)

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
