from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import Comment

# A conversation reads from the top.
OLDEST_FIRST = by_created(col(Comment.created_at), col(Comment.id), descending=False)


class CommentRepository(TenantRepository[Comment]):
    model = Comment

    async def page(
        self, task_id: uuid.UUID, params: PageParams
    ) -> tuple[Sequence[Comment], str | None]:
        stmt = self.select().where(col(Comment.task_id) == task_id)
        return await fetch_page(self.session, stmt, OLDEST_FIRST, params)
