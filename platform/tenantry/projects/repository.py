from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlmodel import col

from tenantry.errors import Unprocessable
from tenantry.kit.pagination import decode_cursor, encode_cursor
from tenantry.kit.repository import RowSelect, TenantRepository
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


def like_pattern(text: str) -> str:
    """`q` is a literal substring: escape LIKE's wildcards (the default escape is `\\`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ProjectRepository(TenantRepository[Project]):
    model = Project

    def select_columns(self) -> RowSelect:
        return sa.select(*COLUMNS).where(col(Project.tenant_id) == self.tenant_id)

    async def get_row(self, id: uuid.UUID) -> RowMapping | None:
        stmt = self.select_columns().where(col(Project.id) == id)
        return (await self.session.execute(stmt)).mappings().first()

    async def list_rows(
        self, *, q: str | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[RowMapping], str | None]:
        """Newest first; the cursor is the (created_at, id) of the last row served."""
        stmt = self.select_columns()
        if q:
            stmt = stmt.where(col(Project.name).ilike(like_pattern(q)))
        if cursor:
            created_at, last_id = _parse(decode_cursor(cursor, size=2))
            stmt = stmt.where(
                sa.tuple_(col(Project.created_at), col(Project.id))
                < sa.tuple_(sa.literal(created_at, sa.DateTime(timezone=True)), last_id)
            )
        stmt = stmt.order_by(col(Project.created_at).desc(), col(Project.id).desc())
        rows = (await self.session.execute(stmt.limit(limit + 1))).mappings().all()
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor([last["created_at"].isoformat(), str(last["id"])])

    async def exists(self, id: uuid.UUID) -> bool:
        stmt = sa.select(sa.literal(1)).where(
            col(Project.tenant_id) == self.tenant_id, col(Project.id) == id
        )
        return (await self.session.execute(stmt)).first() is not None


def _parse(values: list[Any]) -> tuple[datetime, uuid.UUID]:
    try:
        created_at, last_id = datetime.fromisoformat(values[0]), uuid.UUID(values[1])
    except (TypeError, ValueError):
        created_at = None
    if created_at is None or created_at.tzinfo is None:
        raise Unprocessable("Invalid cursor", field="query.cursor")
    return created_at, last_id
