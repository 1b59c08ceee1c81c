"""`RowPage` writes the same bytes as pydantic would for each schema that uses it, for
every kind of value a row brings (both drivers' UUIDs, enums as text or members, dates,
UTC datetimes with and without microseconds, nulls)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from asyncpg.pgproto import pgproto
from pydantic import BaseModel, computed_field

from tenantry.kit.pagination import Page, RowPage
from tenantry.models import TaskStatus
from tenantry.projects.schemas import ProjectRead
from tenantry.tasks.schemas import TaskRead

NOW = datetime(2026, 12, 2, 13, 5, 7, 120034, tzinfo=UTC)
WHOLE_SECOND = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


def _task(i: int) -> dict[str, Any]:
    return {
        "id": pgproto.UUID(str(uuid.uuid4())) if i % 2 else uuid.uuid4(),
        "project_id": pgproto.UUID(str(uuid.uuid4())),
        "title": f'Task «{i}» "quoted" \\ ünïcode',
        "description": None if i % 3 else "line\nbreak",
        "status": TaskStatus.DOING if i % 2 else "todo",
        "priority": i,
        "assignee_id": None if i % 2 else pgproto.UUID(str(uuid.uuid4())),
        "due_date": date(2026, 12, 31) if i % 2 else None,
        "created_at": NOW if i % 2 else WHOLE_SECOND,
        "updated_at": NOW,
    }


def _project(i: int) -> dict[str, Any]:
    return {
        "id": pgproto.UUID(str(uuid.uuid4())),
        "name": f"Project {i}",
        "description": None if i % 2 else "x",
        "created_at": WHOLE_SECOND,
        "updated_at": NOW,
    }


@pytest.mark.parametrize(("schema", "row"), [(TaskRead, _task), (ProjectRead, _project)])
@pytest.mark.parametrize("cursor", [None, "abc_-123"])
def test_the_bytes_are_pydantics(schema: type[BaseModel], row: Any, cursor: str | None) -> None:
    rows = [row(i) for i in range(6)]
    expected = Page[schema].model_validate({"items": rows, "next_cursor": cursor})  # type: ignore[valid-type]
    assert RowPage(schema, rows, cursor).json() == expected.model_dump_json().encode()


def test_an_empty_page() -> None:
    assert RowPage(TaskRead, [], None).json() == b'{"items":[],"next_cursor":null}'


def test_rows_that_are_not_the_schemas_fields_are_refused() -> None:
    row = _task(1)
    reordered = {"title": row.pop("title"), **row}
    with pytest.raises(ValueError, match="fields in order"):
        RowPage(TaskRead, [reordered], None)


def test_a_schema_that_shapes_its_output_is_refused() -> None:
    class Shaped(BaseModel):
        name: str

        @computed_field  # type: ignore[prop-decorator]
        @property
        def loud(self) -> str:
            return self.name.upper()

    with pytest.raises(TypeError, match="shapes its output"):
        RowPage(Shaped, [{"name": "x"}], None)


def test_a_value_of_another_type_is_an_error_not_a_guess() -> None:
    row = _task(1)
    row["priority"] = object()
    with pytest.raises(TypeError):
        RowPage(TaskRead, [row], None).json()
