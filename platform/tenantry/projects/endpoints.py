from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from tenantry.cached_reads import read_entity, read_page
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit import http
from tenantry.kit.conditions import IfMatch
from tenantry.kit.pagination import Page
from tenantry.kit.responses import entity, entity_responses, serialise
from tenantry.projects.auth import ProjectsRead, ProjectsWrite
from tenantry.projects.schemas import ProjectCreate, ProjectListQuery, ProjectRead, ProjectUpdate
from tenantry.projects.service import project as project_service

router = APIRouter(prefix="/projects", tags=["projects"], route_class=UnitOfWorkRoute)


@router.post("", status_code=201, response_model=ProjectRead, responses=entity_responses(201))
async def create(
    body: ProjectCreate, principal: ProjectsWrite, session: SessionDep, request: Request
) -> Response:
    """Create a project."""
    project = await project_service.create(session, principal, body)
    location = http.location(request, "projects", project.id)
    value = serialise(ProjectRead.model_validate(project))
    return entity(request, value, status_code=201, location=location)


@router.get("", response_model=Page[ProjectRead], openapi_extra=ProjectListQuery.openapi())
async def list(principal: ProjectsRead, session: SessionDep, request: Request) -> Response:
    """List the tenant's projects, newest first."""
    query = ProjectListQuery.parse(request)
    return await read_page(
        request,
        principal.require_tenant(),
        "projects",
        query,
        lambda: project_service.list(session, principal, query),
    )


@router.get("/{id}", response_model=ProjectRead, responses=entity_responses(conditional_get=True))
async def get(
    id: uuid.UUID, principal: ProjectsRead, session: SessionDep, request: Request
) -> Response:
    """Get a project; answers 304 when `If-None-Match` holds its current ETag."""
    return await read_entity(
        request,
        principal.require_tenant(),
        "project",
        id,
        lambda: project_service.get(session, principal, id),
    )


@router.patch("/{id}", response_model=ProjectRead, responses=entity_responses())
async def update(
    id: uuid.UUID,
    body: ProjectUpdate,
    principal: ProjectsWrite,
    session: SessionDep,
    request: Request,
    if_match: IfMatch,
) -> Response:
    """Change a project's name or description (only if `If-Match` holds, when sent)."""
    project = await project_service.update(session, principal, id, body, if_match)
    return entity(request, serialise(ProjectRead.model_validate(project)))


@router.delete("/{id}", status_code=204)
async def delete(
    id: uuid.UUID, principal: ProjectsWrite, session: SessionDep, if_match: IfMatch
) -> Response:
    """Delete a project and all of its tasks (only if `If-Match` holds, when sent)."""
    await project_service.delete(session, principal, id, if_match)
    return Response(status_code=204)
