from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from tenantry.db import reads_for
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


_BY_TENANT = col(Project.tenant_id) == sa.bindparam("tenant_id")
_BY_ID = sa.select(*COLUMNS).where(_BY_TENANT, col(Project.id) == sa.bindparam("id"))
_EXISTS: RowSelect = sa.select(sa.literal_column("1").label("found")).where(
    _BY_TENANT, col(Project.id) == sa.bindparam("id")
)
# Templates for the list (see `fetch_page`): without and with the name filter.
_ALL = sa.select(*COLUMNS).where(_BY_TENANT)
_NAMED = _ALL.where(col(Project.name).ilike(sa.bindparam("pattern", type_=sa.String())))


class ProjectRepository(TenantRepository[Project]):
    model = Project

    async def get_row(self, id: uuid.UUID) -> dict[str, Any] | None:
        async with reads_for(self.session) as reads:
            rows = await reads.all(_BY_ID, {"tenant_id": self.tenant_id, "id": id})
        return rows[0] if rows else None

    async def list_rows(
        self, q: str | None, page: PageParams
    ) -> tuple[Sequence[dict[str, Any]], str | None]:
        """Newest first, optionally those whose name contains `q`."""
        values = {"tenant_id": self.tenant_id, "pattern": like_pattern(q) if q else None}
        async with reads_for(self.session) as reads:
            return await fetch_page(reads, _NAMED if q else _ALL, NEWEST_FIRST, page, values=values)

    async def exists(self, id: uuid.UUID) -> bool:
        async with reads_for(self.session) as reads:
            return bool(await reads.all(_EXISTS, {"tenant_id": self.tenant_id, "id": id}))
