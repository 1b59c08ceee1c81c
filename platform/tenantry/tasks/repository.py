from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlmodel import col

from tenantry.errors import Unprocessable
from tenantry.kit.pagination import decode_cursor, encode_cursor
from tenantry.kit.repository import RowSelect, TenantRepository
from tenantry.models import Membership, Project, Task, TaskStatus
from tenantry.projects.repository import like_pattern
from tenantry.tasks.schemas import TaskSort

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

# Keyset conditions stay on plain columns compared with built-in operators: those are
# LEAKPROOF, so PostgreSQL may push them into the index scan beneath the row-level
# security policy. Expressions such as COALESCE are not, and under RLS they would be
# applied as a filter after scanning every earlier row of the project.


def _timestamp(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive timestamp")
    return parsed


def _due(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _priority(value: Any) -> int:
    if not isinstance(value, int):
        raise TypeError("priority must be an int")
    return value


@dataclass(frozen=True)
class _Order:
    column: str
    descending: bool
    parse: Callable[[Any], Any]
    # Undated tasks come last in both directions: NULLs are read in a second step.
    nullable: bool = False


_ORDERS = {
    TaskSort.CREATED_AT: _Order("created_at", False, _timestamp),
    TaskSort.CREATED_AT_DESC: _Order("created_at", True, _timestamp),
    TaskSort.PRIORITY: _Order("priority", False, _priority),
    TaskSort.PRIORITY_DESC: _Order("priority", True, _priority),
    TaskSort.DUE_DATE: _Order("due_date", False, _due, nullable=True),
    TaskSort.DUE_DATE_DESC: _Order("due_date", True, _due, nullable=True),
}


@dataclass(frozen=True)
class TaskFilters:
    status: TaskStatus | None = None
    assignee_id: uuid.UUID | None = None
    q: str | None = None
    sort: TaskSort = TaskSort.CREATED_AT_DESC


class TaskRepository(TenantRepository[Task]):
    model = Task

    def select_columns(self) -> RowSelect:
        return sa.select(*COLUMNS).where(col(Task.tenant_id) == self.tenant_id)

    async def get_row(self, id: uuid.UUID) -> RowMapping | None:
        stmt = self.select_columns().where(col(Task.id) == id)
        return (await self.session.execute(stmt)).mappings().first()

    async def list_rows(
        self,
        project_id: uuid.UUID,
        filters: TaskFilters,
        *,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[RowMapping], str | None]:
        """One page in `filters.sort` order, `id` breaking ties; the cursor carries the
        sort name and the last row's (value, id), so it cannot be replayed on another
        sort."""
        order = _ORDERS[filters.sort]
        stmt = self.select_columns().where(col(Task.project_id) == project_id)
        if filters.status is not None:
            stmt = stmt.where(col(Task.status) == filters.status)
        if filters.assignee_id is not None:
            stmt = stmt.where(col(Task.assignee_id) == filters.assignee_id)
        if filters.q:
            pattern = like_pattern(filters.q)
            stmt = stmt.where(
                sa.or_(col(Task.title).ilike(pattern), col(Task.description).ilike(pattern))
            )
        value: Any = None
        last_id: uuid.UUID | None = None
        if cursor:
            value, last_id = _parse(decode_cursor(cursor, size=3), filters.sort, order)
        key = getattr(Task, order.column)
        task_id = col(Task.id)
        rows: list[RowMapping] = []
        in_nulls = order.nullable and last_id is not None and value is None
        if not in_nulls:
            valued = stmt
            if order.nullable:
                valued = valued.where(key.is_not(None))
            if last_id is not None:
                row_key = sa.tuple_(key, task_id)
                after = sa.tuple_(sa.literal(value, key.type), sa.literal(last_id, sa.Uuid))
                valued = valued.where(row_key < after if order.descending else row_key > after)
            rows.extend(await self._page(valued, key, order.descending, limit + 1))
        if order.nullable and len(rows) <= limit:
            # Undated tasks, after every dated one, in id order.
            undated = stmt.where(key.is_(None))
            if in_nulls:
                undated = undated.where(
                    task_id < last_id if order.descending else task_id > last_id
                )
            rows.extend(await self._page(undated, None, order.descending, limit + 1 - len(rows)))
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        raw = last[order.column]
        dumped = raw.isoformat() if isinstance(raw, date | datetime) else raw
        return rows[:limit], encode_cursor([filters.sort.value, dumped, str(last["id"])])

    async def _page(
        self, stmt: RowSelect, key: Any, descending: bool, limit: int
    ) -> Sequence[RowMapping]:
        keys = [key, col(Task.id)] if key is not None else [col(Task.id)]
        stmt = stmt.order_by(*(k.desc() if descending else k.asc() for k in keys))
        return (await self.session.execute(stmt.limit(limit))).mappings().all()

    async def project_exists(self, project_id: uuid.UUID) -> bool:
        stmt = sa.select(sa.literal(1)).where(
            col(Project.tenant_id) == self.tenant_id, col(Project.id) == project_id
        )
        return (await self.session.execute(stmt)).first() is not None

    async def is_member(self, user_id: uuid.UUID) -> bool:
        stmt = sa.select(sa.literal(1)).where(
            col(Membership.tenant_id) == self.tenant_id, col(Membership.user_id) == user_id
        )
        return (await self.session.execute(stmt)).first() is not None

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


def _parse(values: list[Any], sort: TaskSort, order: _Order) -> tuple[Any, uuid.UUID]:
    try:
        if values[0] != sort.value:
            raise ValueError("cursor of another sort")
        return order.parse(values[1]), uuid.UUID(values[2])
    except (TypeError, ValueError):
        raise Unprocessable("Invalid cursor", field="query.cursor") from None
