"""Keyset pages over `(created_at, id)`, the sort key every list of this platform uses."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement

from tenantry.errors import Unprocessable
from tenantry.kit.pagination import PageParams, decode_cursor, encode_cursor

T = TypeVar("T")
_Column: TypeAlias = ColumnElement[Any] | Mapped[Any]


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    values = decode_cursor(cursor, size=2)
    try:
        return datetime.fromisoformat(str(values[0])), uuid.UUID(str(values[1]))
    except (ValueError, TypeError):
        raise Unprocessable("Invalid cursor", field="query.cursor") from None


async def fetch_page(
    session: AsyncSession,
    stmt: Select[*tuple[Any, ...]],
    *,
    created_at: _Column,
    id: _Column,
    params: PageParams,
    key: Callable[[Any], tuple[datetime, uuid.UUID]],
    descending: bool = False,
    scalars: bool = True,
) -> tuple[Sequence[Any], str | None]:
    """One page and the cursor of the next (None on the last page).

    Fetches `limit + 1` rows so the last page is known without a count query.
    """
    if params.cursor:
        position = sa.tuple_(created_at, id)
        after_created, after_id = _after(params.cursor)
        mark = sa.tuple_(
            sa.literal(after_created, type_=sa.DateTime(timezone=True)),
            sa.literal(after_id, type_=sa.Uuid()),
        )
        stmt = stmt.where(position < mark if descending else position > mark)
    order = (created_at.desc(), id.desc()) if descending else (created_at.asc(), id.asc())
    stmt = stmt.order_by(*order).limit(params.limit + 1)
    result = await session.execute(stmt)
    rows: Sequence[Any] = result.scalars().all() if scalars else result.all()
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last_created, last_id = key(rows[-1])
    return rows, encode_cursor([last_created.isoformat(), str(last_id)])
