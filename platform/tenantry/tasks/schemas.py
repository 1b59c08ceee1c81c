from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints, field_validator

from tenantry.kit.pagination import PageParams
from tenantry.kit.schemas import NotNull, ReadSchema, Schema, trimmed
from tenantry.models import TaskStatus

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), trimmed(200)
]
Description = Annotated[str, Field(max_length=10_000)]
# Strict: `true` or `2.0` is refused, not read as 1 or 2.
Priority = Annotated[StrictInt, Field(ge=1, le=4, description="1 (highest) to 4 (lowest)")]


class TaskSort(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    DUE_DATE = "due_date"
    DUE_DATE_DESC = "-due_date"
    PRIORITY = "priority"
    PRIORITY_DESC = "-priority"


class TaskCreate(Schema):
    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: Priority = 2
    assignee_id: uuid.UUID | None = Field(default=None, description="A member of the tenant")
    due_date: date | None = None


class TaskUpdate(Schema):
    """Only the fields sent change; `description`, `assignee_id` and `due_date` may be
    cleared with null, the others may not."""

    title: Title | None = NotNull()
    description: Description | None = None
    status: TaskStatus | None = NotNull()
    priority: Priority | None = NotNull()
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None

    @field_validator("title", "status", "priority")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value


class TaskRead(ReadSchema):
    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    description: str | None
    status: TaskStatus
    priority: int
    assignee_id: uuid.UUID | None
    due_date: date | None
    created_at: datetime
    updated_at: datetime


class TaskListQuery(PageParams):
    status: TaskStatus | None = None
    assignee_id: uuid.UUID | None = None
    q: str | None = Field(None, max_length=200, description="In title or description")
    sort: TaskSort = TaskSort.CREATED_AT_DESC


# A task as the API shows it, field by field: reports and the CSV export use these
# names and this order, so a field added to TaskRead reaches them all.
TASK_FIELDS = tuple(TaskRead.model_fields)
# The export adds the project's name after its id.
EXPORT_COLUMNS = (*TASK_FIELDS[:2], "project_name", *TASK_FIELDS[2:])
