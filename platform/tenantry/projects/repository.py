from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import RowSelect, TenantRepository, like_pattern
from tenantry.models import Project

# Reads select columns and build the response from rows: no ORM identity map or
# instance state on the hot path.
COLUMNS = (
    col(Project.id),
    col(Project.name),
    col(Project.description),
    col(Project.created_at),
    col(Project.updated_at),
)
NEWEST_FIRST = by_created(col(Project.created_at), col(Project.id))


class ProjectRepository(TenantRepository[Project]):
    model = Project

    def select_columns(self) -> RowSelect:
        return sa.select(*COLUMNS).where(col(Project.tenant_id) == self.tenant_id)

    async def get_row(self, id: uuid.UUID) -> RowMapping | None:
        stmt = self.select_columns().where(col(Project.id) == id)
        return (await self.session.execute(stmt)).mappings().first()

    async def list_rows(
        self, q: str | None, page: PageParams
    ) -> tuple[Sequence[RowMapping], str | None]:
        """Newest first, optionally those whose name contains `q`."""
        stmt = self.select_columns()
        if q:
            stmt = stmt.where(col(Project.name).ilike(like_pattern(q)))
        return await fetch_page(self.session, stmt, NEWEST_FIRST, page, result="mappings")

    async def exists(self, id: uuid.UUID) -> bool:
        stmt = sa.select(sa.literal(1)).where(
            col(Project.tenant_id) == self.tenant_id, col(Project.id) == id
        )
        return (await self.session.execute(stmt)).first() is not None
