"""Keyset pagination: every list of the platform pages through `fetch_page` and a `Sort`.

A `Sort` declares the keys a list is ordered by (the last one unique, normally `id`),
their direction, and where rows whose leading key is NULL go. The cursor is the last
served row's key values (prefixed by the sort's name when a list offers several orders,
so a cursor cannot be replayed on another one). Anything a client sends back that is
not such a cursor answers 422 `query.cursor`: values are type-checked before they are
parsed and bound with explicit types, so no tampered cursor reaches PostgreSQL.

Keyset conditions stay on plain columns compared with built-in operators: those are
LEAKPROOF, so PostgreSQL may push them into the index scan beneath the row-level
security policy. Expressions such as COALESCE are not, and under RLS they would be
applied as a filter after scanning every earlier row. That is why NULLs of a nullable
leading key are read in a second statement (`IS NULL`, then the remaining keys) rather
than folded into the comparison.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol, TypeAlias

import orjson
import sqlalchemy as sa
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement

from tenantry.errors import Unprocessable
from tenantry.kit.pagination import PageParams

Column: TypeAlias = ColumnElement[Any] | Mapped[Any]
KeyType: TypeAlias = type[datetime] | type[date] | type[int] | type[uuid.UUID] | type[str]
Result: TypeAlias = Literal["scalars", "rows", "mappings"]

# Bound types: a tampered cursor value is refused in Python, never by the driver
# (an int beyond int4 bound as the column's Integer would fail inside asyncpg).
_SQL_TYPES: dict[type, sa.types.TypeEngine[Any]] = {
    datetime: sa.DateTime(timezone=True),
    date: sa.Date(),
    int: sa.BigInteger(),
    uuid.UUID: sa.Uuid(),
    str: sa.String(),
}
_INT64 = 2**63


class RowSource(Protocol):
    """Runs a select with bound values and answers plain dict rows."""

    async def all(
        self, stmt: Select[*tuple[Any, ...]], values: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...


class InvalidCursor(Unprocessable):
    def __init__(self) -> None:
        super().__init__("Invalid cursor", field="query.cursor")


def encode_cursor(values: list[Any]) -> str:
    """Opaque to clients: the sort key of the last row served, base64url JSON."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise InvalidCursor() from None
    if not isinstance(values, list) or len(values) != size:
        raise InvalidCursor()
    return values


@dataclass(frozen=True)
class Key:
    """One sort key: the column to order by, its Python type, and the attribute under
    which a fetched row carries it (its label when the select renames it)."""

    column: Column
    type: KeyType
    attr: str
    nullable: bool = False

    def dump(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, date):  # datetime is a date too
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    def parse(self, raw: Any) -> Any:
        """The cursor value, or InvalidCursor; never lets a bad value through."""
        if raw is None:
            if self.nullable:
                return None
            raise InvalidCursor()
        if self.type is int:
            if isinstance(raw, bool) or not isinstance(raw, int) or not -_INT64 <= raw < _INT64:
                raise InvalidCursor()
            return raw
        if not isinstance(raw, str) or "\x00" in raw:
            raise InvalidCursor()
        try:
            if self.type is datetime:
                parsed = datetime.fromisoformat(raw)
                if parsed.tzinfo is None:
                    raise ValueError("naive timestamp")
                return parsed.astimezone(UTC)
            if self.type is date:
                return date.fromisoformat(raw)
            if self.type is uuid.UUID:
                return uuid.UUID(raw)
        except (ValueError, OverflowError):
            raise InvalidCursor() from None
        return raw

    def literal(self, value: Any) -> ColumnElement[Any]:
        return sa.literal(value, type_=_SQL_TYPES[self.type])


@dataclass(frozen=True)
class Sort:
    """Keys in order, all in one direction; only the leading key may be nullable.

    `nulls` places rows whose leading key is NULL before or after every other row, in
    both directions (undated tasks come last whether sorted by due date up or down).
    """

    keys: tuple[Key, ...]
    descending: bool = False
    name: str | None = None
    nulls: Literal["first", "last"] = "last"

    def __post_init__(self) -> None:
        if not self.keys or any(key.nullable for key in self.keys[1:]):
            raise ValueError("a sort needs keys; only the leading key may be nullable")

    def encode(self, row: Any) -> str:
        values = [key.dump(_attr(row, key.attr)) for key in self.keys]
        return encode_cursor(values if self.name is None else [self.name, *values])

    def decode(self, cursor: str) -> tuple[Any, ...]:
        size = len(self.keys) + (self.name is not None)
        values = decode_cursor(cursor, size=size)
        if self.name is not None:
            if values[0] != self.name:
                raise InvalidCursor()
            values = values[1:]
        return tuple(key.parse(raw) for key, raw in zip(self.keys, values, strict=True))


def by_created(
    created_at: Column,
    id: Column,
    *,
    descending: bool = True,
    created_attr: str = "created_at",
    id_attr: str = "id",
) -> Sort:
    """The order most lists use: `(created_at, id)`, newest first unless told."""
    return Sort(
        (Key(created_at, datetime, created_attr), Key(id, uuid.UUID, id_attr)),
        descending=descending,
    )


def _attr(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def _mark(key: Key, index: int) -> ColumnElement[Any]:
    return sa.bindparam(f"after_{index}", type_=_SQL_TYPES[key.type])


def _after(keys: Sequence[Key], first: int, descending: bool) -> ColumnElement[bool]:
    """Rows after the cursor's values, bound as `after_<n>` from key `first` on."""
    if len(keys) == 1:
        column, mark = keys[0].column, _mark(keys[0], first)
    else:
        column = sa.tuple_(*(key.column for key in keys))
        mark = sa.tuple_(*(_mark(key, first + n) for n, key in enumerate(keys)))
    return column < mark if descending else column > mark


Start: TypeAlias = Literal["first", "valued", "nulls"]
Phase: TypeAlias = tuple[tuple[ColumnElement[bool], ...], tuple[Any, ...]]


@functools.cache
def _plan(sort: Sort, start: Start) -> tuple[Phase, ...]:
    """The statements' extra conditions and order, in the order their rows come.

    Built once per sort and starting point (no cursor, a cursor in the valued rows, a
    cursor in the NULLs); the cursor's values are bound at execution, so a page
    builds no SQL expressions at all.
    """
    order = tuple(key.column.desc() if sort.descending else key.column.asc() for key in sort.keys)
    lead = sort.keys[0]
    if not lead.nullable:
        where = () if start == "first" else (_after(sort.keys, 0, sort.descending),)
        return ((where, order),)
    valued_where: tuple[ColumnElement[bool], ...] = (lead.column.is_not(None),)
    if start == "valued":
        valued_where += (_after(sort.keys, 0, sort.descending),)
    nulls_where: tuple[ColumnElement[bool], ...] = (lead.column.is_(None),)
    if start == "nulls":
        nulls_where += (_after(sort.keys[1:], 1, sort.descending),)
    valued = (valued_where, order)
    nulls = (nulls_where, order[1:])
    if sort.nulls == "last":
        return (nulls,) if start == "nulls" else (valued, nulls)
    return (nulls, valued) if start != "valued" else (valued,)


_LIMIT = sa.bindparam("page_limit", type_=sa.Integer())
_PAGED: dict[tuple[int, int], tuple[Any, Any]] = {}


def _paged(stmt: Select[*tuple[Any, ...]], phase: Phase, *, template: bool) -> Any:
    """`stmt` with a phase's conditions, order and the bound limit; kept per template
    (a statement its repository builds once), so the hot lists build nothing."""
    if not template:
        return stmt.where(*phase[0]).order_by(*phase[1]).limit(_LIMIT)
    key = (id(stmt), id(phase))
    hit = _PAGED.get(key)
    if hit is None or hit[0] is not stmt:  # an id reused by a new object: rebuild
        if len(_PAGED) > 1024:
            _PAGED.clear()
        hit = (stmt, stmt.where(*phase[0]).order_by(*phase[1]).limit(_LIMIT))
        _PAGED[key] = hit
    return hit[1]


async def fetch_page(
    session: AsyncSession | RowSource,
    stmt: Select[*tuple[Any, ...]],
    sort: Sort,
    params: PageParams,
    *,
    result: Result = "scalars",
    values: Mapping[str, Any] | None = None,
) -> tuple[Sequence[Any], str | None]:
    """One page of `stmt` in `sort` order and the cursor of the next (None on the last).

    Fetches `limit + 1` rows so the last page is known without a count query. `result`
    says what a row is: an ORM object, a `Row`, or a `RowMapping`; through `Reads`
    (a `RowSource`: `tenantry.db.reads_for`, the hot GETs) a row is a plain dict.

    `values` marks `stmt` as a template: a statement built once (per shape of filters)
    with `sa.bindparam` placeholders, whose values these are. Its paged forms are kept,
    so a page costs no SQL construction; without `values`, `stmt` is a one-off.
    """
    after = sort.decode(params.cursor) if params.cursor else None
    start: Start = "first" if after is None else "nulls" if after[0] is None else "valued"
    bound = dict(values or {})
    bound.update((f"after_{n}", value) for n, value in enumerate(after or ()))
    rows: list[Any] = []
    for phase in _plan(sort, start):
        want = params.limit + 1 - len(rows)
        if want <= 0:
            break
        page_stmt = _paged(stmt, phase, template=values is not None)
        if not isinstance(session, AsyncSession):
            rows.extend(await session.all(page_stmt, {**bound, "page_limit": want}))
            continue
        executed = await session.execute(page_stmt, {**bound, "page_limit": want})
        if result == "scalars":
            rows.extend(executed.scalars().all())
        elif result == "mappings":
            rows.extend(executed.mappings().all())
        else:
            rows.extend(executed.all())
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    return rows, sort.encode(rows[-1])
