from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.audit.service import audit
from tenantry.auth.principal import Principal
from tenantry.db import Database, Rider, violated_constraint
from tenantry.errors import NotFound, Unprocessable
from tenantry.kit.csv import cell
from tenantry.kit.pagination import RowPage
from tenantry.kit.precondition import Precondition, writable
from tenantry.models import Tenant
from tenantry.projects.service import ProjectNotFound
from tenantry.projects.service import project as project_service
from tenantry.tasks.repository import TaskRepository
from tenantry.tasks.schemas import (
    EXPORT_COLUMNS,
    TaskCreate,
    TaskListQuery,
    TaskRead,
    TaskUpdate,
)
from tenantry.webhooks.service import webhook_events

EXPORT_BATCH = 1_000
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


class TaskNotFound(NotFound):
    title = "Task not found"

    def __init__(self) -> None:
        super().__init__("No task with this id")


class AssigneeNotMember(Unprocessable):
    def __init__(self) -> None:
        super().__init__("assignee_id must be a member of this tenant", field="body.assignee_id")


@dataclass(frozen=True)
class Export:
    filename: str
    chunks: AsyncIterator[bytes]


class TaskService:
    def _repo(self, session: AsyncSession, principal: Principal) -> TaskRepository:
        return TaskRepository(session, principal.require_tenant())

    async def _check(
        self, repo: TaskRepository, id: uuid.UUID, precondition: Precondition | None
    ) -> None:
        """With a precondition, lock the task and check it: it must hold until the write
        (a concurrent writer waits, then sees the new version). Without one the write
        itself finds the task, or not."""
        if precondition is not None:
            row = await repo.lock_row(id)
            writable(row, TaskNotFound, TaskRead.model_validate, precondition)

    def _riders(
        self, session: AsyncSession, principal: Principal, entry: dict[str, Any]
    ) -> list[Rider]:
        """What a task write records beside its row, in its own statement: the audit
        row, and whether any webhook endpoint listens (then, and only then, the event
        is fanned out by a statement of its own, with the row as written)."""
        tenant_id = principal.require_tenant()
        return [
            audit.rider(session, principal, entry),
            webhook_events.rider(session, tenant_id, entry["action"]),
        ]

    async def create(
        self, session: AsyncSession, principal: Principal, project_id: uuid.UUID, data: TaskCreate
    ) -> TaskRead:
        repo = self._repo(session, principal)
        # With an assignee, two foreign keys can fail, and PostgreSQL checks them in an
        # order we do not choose (Citus's shards differ from a single database): look
        # the project up first, so a missing one is always 404, never 422.
        if data.assignee_id is not None and not await project_service.exists(
            session, principal, project_id
        ):
            raise ProjectNotFound()
        now = datetime.now(UTC)
        values = data.model_dump() | {
            "id": uuid.uuid4(),
            "project_id": project_id,
            "created_at": now,
            "updated_at": now,
        }
        entry = audit.entry(
            principal,
            "task.created",
            target_type="task",
            target_id=values["id"],
            data={"project_id": str(project_id), "title": values["title"]},
        )
        riders = self._riders(session, principal, entry)
        try:
            row = await repo.insert_row(values, riders)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise _refusal(exc) from None
        subscribed = webhook_events.listening(row)
        task = TaskRead.model_validate(row)
        await webhook_events.emit(
            session, repo.tenant_id, "task.created", task, subscribed=subscribed
        )
        return task

    async def get(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> TaskRead:
        row = await self._repo(session, principal).get_row(id)
        if row is None:
            raise TaskNotFound()
        return TaskRead.model_validate(dict(row))

    async def exists(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> bool:
        return await self._repo(session, principal).get_row(id) is not None

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        project_id: uuid.UUID,
        query: TaskListQuery,
    ) -> RowPage:
        repo = self._repo(session, principal)
        rows, next_cursor = await repo.list_rows(project_id, query)
        # A page with rows proves the project exists (RLS and the composite FK); only
        # an empty one costs the extra lookup that tells 404 from "no tasks".
        if not rows and not await project_service.exists(session, principal, project_id):
            raise ProjectNotFound()
        return RowPage(TaskRead, rows, next_cursor)

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        data: TaskUpdate,
        precondition: Precondition | None = None,
    ) -> TaskRead:
        repo = self._repo(session, principal)
        await self._check(repo, id, precondition)
        changes = data.model_dump(exclude_unset=True)
        if not changes:
            return await self.get(session, principal, id)
        entry = audit.entry(
            principal,
            "task.updated",
            target_type="task",
            target_id=id,
            data={"fields": sorted(changes)},
        )
        riders = self._riders(session, principal, entry)
        try:
            row = await repo.update_row(id, changes, datetime.now(UTC), riders)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise _refusal(exc) from None
        if row is None:
            raise TaskNotFound()  # rolls back the audit row that rode along
        subscribed = webhook_events.listening(row)
        task = TaskRead.model_validate(row)
        await webhook_events.emit(
            session, repo.tenant_id, "task.updated", task, subscribed=subscribed
        )
        return task

    async def delete(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        precondition: Precondition | None = None,
    ) -> None:
        repo = self._repo(session, principal)
        await self._check(repo, id, precondition)
        listening = webhook_events.rider(session, repo.tenant_id, "task.deleted")
        row = await repo.delete_row(id, [listening])
        if row is None:
            raise TaskNotFound()
        # What the audit row says comes from the deleted row: it follows the delete.
        await audit.record(
            session,
            principal,
            "task.deleted",
            target_type="task",
            target_id=id,
            data={"project_id": str(row["project_id"]), "title": row["title"]},
        )
        await webhook_events.emit(
            session,
            repo.tenant_id,
            "task.deleted",
            {"id": str(id)},
            subscribed=webhook_events.listening(row),
        )

    async def export_csv(self, session: AsyncSession, db: Database, principal: Principal) -> Export:
        """The tenant's tasks as CSV, streamed from a server-side cursor.

        The body is produced after this request's unit of work has committed, so the
        stream runs in a transaction of its own, scoped to the tenant for RLS.
        """
        tenant_id = principal.require_tenant()
        slug = (
            await session.execute(sa.select(col(Tenant.slug)).where(col(Tenant.id) == tenant_id))
        ).scalar_one()
        await audit.record(session, principal, "tasks.exported", target_type="tenant")
        today = datetime.now(UTC).date().isoformat()
        filename = f"tasks-{_UNSAFE_FILENAME.sub('-', slug)}-{today}.csv"
        return Export(filename, self._csv_chunks(db, tenant_id))

    async def _csv_chunks(self, db: Database, tenant_id: uuid.UUID) -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        yield buffer.getvalue().encode()
        async with db.session_scope(tenant_id) as session:
            stmt = TaskRepository(session, tenant_id).stream_statement()
            result = await session.stream(stmt.execution_options(yield_per=EXPORT_BATCH))
            async for rows in result.mappings().partitions():
                buffer.seek(0)
                buffer.truncate()
                writer.writerows([cell(row[c]) for c in EXPORT_COLUMNS] for row in rows)
                yield buffer.getvalue().encode()


def _refusal(error: asyncpg.IntegrityConstraintViolationError) -> BaseException:
    """What a refused task write answers. The composite foreign keys are the check that
    the project and the assignee exist in this tenant: a lookup before the write would
    cost a round trip and could still lose a race with a concurrent removal."""
    constraint = violated_constraint(error)
    if constraint == "fk_tasks_assignee_membership":
        return AssigneeNotMember()
    if constraint == "fk_tasks_project":
        return ProjectNotFound()
    refused: BaseException = error
    return refused


task = TaskService()
