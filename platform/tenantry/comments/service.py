"""Comments on tasks: members write, everyone of the tenant reads, the author or an
admin deletes. A task's comments go with it (FK cascade)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.auth.principal import Principal, user_id_of
from tenantry.comments.repository import CommentRepository
from tenantry.comments.schemas import CommentCreate, CommentRead
from tenantry.errors import Forbidden, NotFound
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import Comment, Role
from tenantry.tasks.service import TaskNotFound
from tenantry.tasks.service import task as task_service
from tenantry.webhooks.service import webhook_events


class CommentNotFound(NotFound):
    title = "Comment not found"

    def __init__(self) -> None:
        super().__init__("No comment with this id")


class NotYourComment(Forbidden):
    def __init__(self) -> None:
        super().__init__("Only its author or an admin may delete a comment")


class CommentService:
    def _repo(self, session: AsyncSession, principal: Principal) -> CommentRepository:
        return CommentRepository(session, principal.require_tenant())

    async def create(
        self, session: AsyncSession, principal: Principal, task_id: uuid.UUID, data: CommentCreate
    ) -> Comment:
        if not await task_service.exists(session, principal, task_id):
            raise TaskNotFound()
        repo = self._repo(session, principal)
        comment = repo.add(
            Comment(
                tenant_id=repo.tenant_id,
                task_id=task_id,
                author_id=user_id_of(principal),
                body=data.body,
            )
        )
        await session.flush()
        await audit.record(
            session,
            principal,
            "comment.created",
            target_type="comment",
            target_id=comment.id,
            data={"task_id": str(task_id)},
        )
        await webhook_events.emit(
            session, repo.tenant_id, "comment.created", CommentRead.model_validate(comment)
        )
        return comment

    async def list(
        self, session: AsyncSession, principal: Principal, task_id: uuid.UUID, params: PageParams
    ) -> Page[CommentRead]:
        rows, next_cursor = await self._repo(session, principal).page(task_id, params)
        # Rows prove the task is the tenant's; only an empty page needs the lookup
        # that tells 404 from "no comments yet".
        if not rows and not await task_service.exists(session, principal, task_id):
            raise TaskNotFound()
        items = [CommentRead.model_validate(row) for row in rows]
        return Page[CommentRead](items=items, next_cursor=next_cursor)

    async def delete(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> None:
        repo = self._repo(session, principal)
        comment = await repo.get(id)
        if comment is None:
            raise CommentNotFound()
        is_admin = principal.role is not None and principal.role.at_least(Role.ADMIN)
        if comment.author_id != user_id_of(principal) and not is_admin:
            raise NotYourComment()
        await repo.delete(comment)
        await session.flush()
        await audit.record(
            session,
            principal,
            "comment.deleted",
            target_type="comment",
            target_id=id,
            data={"task_id": str(comment.task_id)},
        )
        await webhook_events.emit(session, repo.tenant_id, "comment.deleted", {"id": str(id)})


comment = CommentService()
