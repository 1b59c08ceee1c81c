from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.auth.principal import Principal
from tenantry.errors import NotFound
from tenantry.kit.pagination import RowPage
from tenantry.kit.precondition import Precondition, writable
from tenantry.models import Project
from tenantry.projects.repository import ProjectRepository
from tenantry.projects.schemas import ProjectCreate, ProjectListQuery, ProjectRead, ProjectUpdate
from tenantry.webhooks.service import webhook_events


class ProjectNotFound(NotFound):
    title = "Project not found"

    def __init__(self) -> None:
        # One answer for "never existed" and "another tenant's": ids leak nothing.
        super().__init__("No project with this id")


class ProjectService:
    def _repo(self, session: AsyncSession, principal: Principal) -> ProjectRepository:
        return ProjectRepository(session, principal.require_tenant())

    async def _locked(
        self, repo: ProjectRepository, id: uuid.UUID, precondition: Precondition | None
    ) -> Project:
        """The project, locked for this transaction when a precondition must hold
        until the write (a concurrent writer waits, then sees the new version)."""
        project = await repo.get(id, for_update=precondition is not None)
        return writable(project, ProjectNotFound, ProjectRead.model_validate, precondition)

    async def create(
        self, session: AsyncSession, principal: Principal, data: ProjectCreate
    ) -> Project:
        project = self._repo(session, principal).add(Project(**data.model_dump()))
        await session.flush()
        await audit.record(
            session,
            principal,
            "project.created",
            target_type="project",
            target_id=project.id,
            data={"name": project.name},
        )
        await webhook_events.emit(
            session, project.tenant_id, "project.created", ProjectRead.model_validate(project)
        )
        return project

    async def get(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> ProjectRead:
        row = await self._repo(session, principal).get_row(id)
        if row is None:
            raise ProjectNotFound()
        return ProjectRead.model_validate(dict(row))

    async def exists(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> bool:
        return await self._repo(session, principal).exists(id)

    async def list(
        self, session: AsyncSession, principal: Principal, query: ProjectListQuery
    ) -> RowPage:
        rows, next_cursor = await self._repo(session, principal).list_rows(query.q, query)
        return RowPage(ProjectRead, rows, next_cursor)

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        data: ProjectUpdate,
        precondition: Precondition | None = None,
    ) -> Project:
        project = await self._locked(self._repo(session, principal), id, precondition)
        changes = data.model_dump(exclude_unset=True)
        for field, value in changes.items():
            setattr(project, field, value)
        if changes:
            await session.flush()
            await audit.record(
                session,
                principal,
                "project.updated",
                target_type="project",
                target_id=project.id,
                data={"fields": sorted(changes)},
            )
            await webhook_events.emit(
                session, project.tenant_id, "project.updated", ProjectRead.model_validate(project)
            )
        return project

    async def delete(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        precondition: Precondition | None = None,
    ) -> None:
        repo = self._repo(session, principal)
        project = await self._locked(repo, id, precondition)
        await repo.delete(project)
        await session.flush()
        await audit.record(
            session,
            principal,
            "project.deleted",
            target_type="project",
            target_id=id,
            data={"name": project.name},
        )
        await webhook_events.emit(session, repo.tenant_id, "project.deleted", {"id": str(id)})


project = ProjectService()
