"""kit.keyset on real rows: nulls placement both ways, multi-column walks, cursor checks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from sqlmodel import col

from tenantry.db import Database
from tenantry.kit.keyset import InvalidCursor, Key, Sort, by_created, encode_cursor, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.models import Project, Task, Tenant
from tests.fixtures.tenant_data import make_project, make_tasks


def _due_sort(*, descending: bool, nulls: Literal["first", "last"]) -> Sort:
    return Sort(
        (
            Key(col(Task.due_date), date, "due_date", nullable=True),
            Key(col(Task.id), uuid.UUID, "id"),
        ),
        descending=descending,
        nulls=nulls,
    )


async def _walk(db: Database, project: Project, sort: Sort, limit: int) -> list[Any]:
    stmt = sa.select(Task).where(
        col(Task.tenant_id) == project.tenant_id, col(Task.project_id) == project.id
    )
    seen: list[Any] = []
    cursor: str | None = None
    for _ in range(50):
        async with db.session_scope(project.tenant_id) as session:
            rows, cursor = await fetch_page(
                session, stmt, sort, PageParams(limit=limit, cursor=cursor)
            )
        seen += [(row.due_date, row.id) for row in rows]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


def _expected(tasks: list[Task], *, descending: bool, nulls: str) -> list[Any]:
    dated = sorted(((t.due_date, t.id) for t in tasks if t.due_date), reverse=descending)
    undated = sorted(((None, t.id) for t in tasks if t.due_date is None), reverse=descending)
    return undated + dated if nulls == "first" else dated + undated


class TestFetchPage:
    @pytest.mark.parametrize("descending", [False, True])
    @pytest.mark.parametrize("nulls", ["first", "last"])
    @pytest.mark.parametrize("limit", [1, 4, 100])
    async def test_walks_a_nullable_key_in_order(
        self,
        db: Database,
        tenant: Tenant,
        descending: bool,
        nulls: Literal["first", "last"],
        limit: int,
    ) -> None:
        project = await make_project(db, tenant)
        tasks = await make_tasks(db, project, 11)
        sort = _due_sort(descending=descending, nulls=nulls)
        seen = await _walk(db, project, sort, limit)
        assert seen == _expected(tasks, descending=descending, nulls=nulls)


class TestCursor:
    SORT = _due_sort(descending=False, nulls="last")

    def test_round_trip(self) -> None:
        row = {"due_date": date(2027, 1, 2), "id": uuid.uuid4()}
        assert self.SORT.decode(self.SORT.encode(row)) == (row["due_date"], row["id"])

    def test_null_only_where_nullable(self) -> None:
        assert self.SORT.decode(encode_cursor([None, str(uuid.uuid4())]))[0] is None
        with pytest.raises(InvalidCursor):
            self.SORT.decode(encode_cursor(["2027-01-01", None]))

    @pytest.mark.parametrize(
        "values",
        [
            ["2027-01-01"],
            ["2027-01-01", "x"],
            [{"a": 1}, str(uuid.uuid4())],
            [20270101, str(uuid.uuid4())],
            ["2027-01-01", {"a": 1}],
        ],
    )
    def test_refuses_what_it_did_not_write(self, values: list[Any]) -> None:
        with pytest.raises(InvalidCursor):
            self.SORT.decode(encode_cursor(values))

    def test_named_sort_refuses_another_name(self) -> None:
        named = Sort(self.SORT.keys, name="due_date")
        cursor = named.encode({"due_date": None, "id": uuid.uuid4()})
        with pytest.raises(InvalidCursor):
            Sort(self.SORT.keys, name="-due_date").decode(cursor)

    def test_timestamps_must_carry_a_zone(self) -> None:
        sort = by_created(col(Task.created_at), col(Task.id))
        aware = sort.decode(encode_cursor(["2026-01-01T00:00:00+02:00", str(uuid.uuid4())]))
        assert aware[0] == datetime.fromisoformat("2025-12-31T22:00:00+00:00")
        with pytest.raises(InvalidCursor):
            sort.decode(encode_cursor(["2026-01-01T00:00:00", str(uuid.uuid4())]))

    def test_only_the_leading_key_may_be_nullable(self) -> None:
        with pytest.raises(ValueError, match="nullable"):
            Sort(
                (
                    Key(col(Task.id), uuid.UUID, "id"),
                    Key(col(Task.due_date), date, "due_date", nullable=True),
                )
            )
