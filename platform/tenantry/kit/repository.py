"""Repositories: the single place tenant-owned rows are selected, always by tenant."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.models import TenantScoped

M = TypeVar("M", bound=TenantScoped)

# A column-wise select (`select(Model.a, Model.b)`), which hot reads use instead of
# hydrating ORM objects.
RowSelect = Select[*tuple[Any, ...]]


def like_pattern(text: str) -> str:
    """`q` is a literal substring: escape LIKE's wildcards (the default escape is `\\`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class TenantRepository(Generic[M]):
    """Every statement starts from `self.select()`, already filtered by tenant.

    RLS enforces the same boundary in PostgreSQL; the filter here keeps plans using the
    `tenant_id`-leading indexes and makes the intent visible in code review.
    """

    model: type[M]

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def select(self) -> Select[M]:
        return select(self.model).where(col(self.model.tenant_id) == self.tenant_id)

    async def get(self, id: uuid.UUID, *, for_update: bool = False) -> M | None:
        """One row; `for_update` locks it until the transaction ends, so a check made on
        it (an `If-Match` ETag) still holds when the write lands."""
        stmt = self.select().where(self.model.id == id)  # type: ignore[attr-defined]
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        result = await self.session.execute(stmt)
        return result.scalar_one_or_none()

    def add(self, obj: M) -> M:
        obj.tenant_id = self.tenant_id
        self.session.add(obj)
        return obj

    async def delete(self, obj: M) -> None:
        await self.session.delete(obj)

    async def scalars(self, stmt: Select[Any]) -> list[M]:
        result = await self.session.execute(stmt)
        return list(result.scalars().all())
