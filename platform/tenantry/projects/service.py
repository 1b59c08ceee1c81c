from __future__ import annotations

import hashlib
import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry import cache
from tenantry.audit.service import audit
from tenantry.auth.principal import Principal
from tenantry.cache import Cached
from tenantry.errors import NotFound
from tenantry.kit.conditions import Precondition
from tenantry.kit.pagination import Page, PageParams
from tenantry.kit.responses import serialise
from tenantry.models import Project
from tenantry.projects.repository import ProjectRepository
from tenantry.projects.schemas import ProjectCreate, ProjectRead, ProjectUpdate
from tenantry.webhooks import events as webhook_events


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
        if project is None:
            raise ProjectNotFound()
        if precondition is not None:
            precondition.check(serialise(ProjectRead.model_validate(project)).etag)
        return project

    async def create(
        self, session: AsyncSession, principal: Principal, data: ProjectCreate
    ) -> Project:
        project = self._repo(session, principal).add(Project(**data.model_dump()))
        await session.flush()
        audit.record(
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

    async def get(
        self, session: AsyncSession, redis: Redis, principal: Principal, id: uuid.UUID
    ) -> Cached:
        repo = self._repo(session, principal)

        async def fill() -> Cached | None:
            row = await repo.get_row(id)
            return None if row is None else serialise(ProjectRead.model_validate(dict(row)))

        value = await cache.cached(redis, repo.tenant_id, f"project:{id}", fill, cache="project")
        if value is None:
            raise ProjectNotFound()
        return value

    async def list(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        page: PageParams,
        *,
        q: str | None,
    ) -> Cached:
        repo = self._repo(session, principal)

        async def fill() -> Cached:
            rows, next_cursor = await repo.list_rows(q, page)
            items = [ProjectRead.model_validate(dict(row)) for row in rows]
            return serialise(Page[ProjectRead](items=items, next_cursor=next_cursor))

        if page.cursor:
            # Deeper pages are cheap keyset reads and rarely repeated: not worth a key.
            return await fill()
        digest = hashlib.sha256(f"{page.limit}\0{q or ''}".encode()).hexdigest()[:24]
        value = await cache.cached(
            redis, repo.tenant_id, f"projects:{digest}", fill, cache="projects"
        )
        assert value is not None
        return value

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
            audit.record(
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
        audit.record(
            session,
            principal,
            "project.deleted",
            target_type="project",
            target_id=id,
            data={"name": project.name},
        )
        await webhook_events.emit(session, repo.tenant_id, "project.deleted", {"id": str(id)})


project = ProjectService()
