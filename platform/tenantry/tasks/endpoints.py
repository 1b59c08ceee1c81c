from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tenantry.cached_reads import read_entity, read_page
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.conditions import IfMatch
from tenantry.kit.http import location
from tenantry.kit.pagination import Page
from tenantry.kit.responses import entity, entity_responses, serialise
from tenantry.tasks.auth import TasksRead, TasksWrite
from tenantry.tasks.schemas import TaskCreate, TaskListQuery, TaskRead, TaskUpdate
from tenantry.tasks.service import task as task_service

router = APIRouter(tags=["tasks"], route_class=UnitOfWorkRoute)
exports_router = APIRouter(prefix="/exports", tags=["exports"], route_class=UnitOfWorkRoute)


@router.post(
    "/projects/{project_id}/tasks",
    status_code=201,
    response_model=TaskRead,
    responses=entity_responses(201),
)
async def create(
    project_id: uuid.UUID,
    body: TaskCreate,
    principal: TasksWrite,
    session: SessionDep,
    request: Request,
) -> Response:
    """Create a task in a project."""
    task = await task_service.create(session, principal, project_id, body)
    return entity(
        request, serialise(task), status_code=201, location=location(request, "tasks", task.id)
    )


@router.get(
    "/projects/{project_id}/tasks",
    response_model=Page[TaskRead],
    openapi_extra=TaskListQuery.openapi(),
)
async def list(
    project_id: uuid.UUID, principal: TasksRead, session: SessionDep, request: Request
) -> Response:
    """List a project's tasks; filter by status, assignee or text, sort by a field."""
    query = TaskListQuery.parse(request)
    return await read_page(
        request,
        principal.require_tenant(),
        "tasks",
        query,
        lambda: task_service.list(session, principal, project_id, query),
        project_id,
    )


@router.get(
    "/tasks/{id}", response_model=TaskRead, responses=entity_responses(conditional_get=True)
)
async def get(
    id: uuid.UUID, principal: TasksRead, session: SessionDep, request: Request
) -> Response:
    """Get a task; answers 304 when `If-None-Match` holds its current ETag."""
    return await read_entity(
        request,
        principal.require_tenant(),
        "task",
        id,
        lambda: task_service.get(session, principal, id),
    )


@router.patch("/tasks/{id}", response_model=TaskRead, responses=entity_responses())
async def update(
    id: uuid.UUID,
    body: TaskUpdate,
    principal: TasksWrite,
    session: SessionDep,
    request: Request,
    if_match: IfMatch,
) -> Response:
    """Change a task's fields (only if `If-Match` holds, when sent)."""
    task = await task_service.update(session, principal, id, body, if_match)
    return entity(request, serialise(task))


@router.delete("/tasks/{id}", status_code=204)
async def delete(
    id: uuid.UUID, principal: TasksWrite, session: SessionDep, if_match: IfMatch
) -> Response:
    """Delete a task (only if `If-Match` holds, when sent)."""
    await task_service.delete(session, principal, id, if_match)
    return Response(status_code=204)


@exports_router.get(
    "/tasks.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every task of the tenant, one row each, with a header row",
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "`attachment` with the file's name",
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def export_tasks_csv(principal: TasksRead, session: SessionDep, request: Request) -> Response:
    """Download every task of the tenant as CSV, streamed."""
    export = await task_service.export_csv(session, request.app.state.db, principal)
    return StreamingResponse(
        export.chunks,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "Cache-Control": "no-store",
        },
    )
