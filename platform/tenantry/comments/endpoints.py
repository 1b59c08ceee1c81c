from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from tenantry.comments.auth import CommentsRead, CommentsWrite
from tenantry.comments.schemas import CommentCreate, CommentRead
from tenantry.comments.service import CommentNotFound, NotYourComment
from tenantry.comments.service import comment as comment_service
from tenantry.deps import SessionDep, UnitOfWorkRoute
from tenantry.kit.openapi import raises
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Comment
from tenantry.tasks.service import TaskNotFound

router = APIRouter(tags=["comments"], route_class=UnitOfWorkRoute)


@router.post(
    "/tasks/{task_id}/comments",
    status_code=201,
    response_model=CommentRead,
    responses=raises(TaskNotFound),
)
async def create(
    task_id: uuid.UUID, body: CommentCreate, principal: CommentsWrite, session: SessionDep
) -> Comment:
    """Comment on a task, as yourself (members and above)."""
    return await comment_service.create(session, principal, task_id, body)


@router.get(
    "/tasks/{task_id}/comments",
    response_model=Page[CommentRead],
    responses=raises(TaskNotFound),
    openapi_extra=PageParams.openapi(),
)
async def list(
    task_id: uuid.UUID, principal: CommentsRead, session: SessionDep, request: Request
) -> Page[CommentRead]:
    """List a task's comments, oldest first."""
    return await comment_service.list(session, principal, task_id, PageParams.parse(request))


@router.delete("/comments/{id}", status_code=204, responses=raises(CommentNotFound, NotYourComment))
async def delete(id: uuid.UUID, principal: CommentsWrite, session: SessionDep) -> Response:
    """Delete a comment (its author, or an admin)."""
    await comment_service.delete(session, principal, id)
    return Response(status_code=204)
