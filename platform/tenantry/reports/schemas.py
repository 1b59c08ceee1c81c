from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tenantry.errors import Unprocessable
from tenantry.kit.schemas import ReadSchema, Schema
from tenantry.models import ReportFormat, ReportKind, ReportStatus


class ReportCreate(Schema):
    kind: ReportKind
    format: ReportFormat = ReportFormat.JSON
    params: dict[str, Any] = Field(default_factory=dict)


class ReportQueued(BaseModel):
    id: uuid.UUID
    status: ReportStatus


class ReportRead(ReadSchema):
    id: uuid.UUID
    kind: ReportKind
    format: ReportFormat
    params: dict[str, Any]
    status: ReportStatus
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    size_bytes: int | None
    row_count: int | None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NoParams(_Params):
    pass


class DateRange(_Params):
    """Inclusive ISO dates, as the contract's `params.from` and `params.to`."""

    from_: date = Field(alias="from")
    to: date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.to < self.from_:
            raise ValueError("'to' must not be before 'from'")
        if (self.to - self.from_).days > 366:
            raise ValueError("a range covers at most 366 days")
        return self


class TasksParams(_Params):
    project_id: uuid.UUID | None = None


PARAMS: dict[ReportKind, type[_Params]] = {
    ReportKind.TASKS: TasksParams,
    ReportKind.PROJECT_SUMMARY: NoParams,
    ReportKind.ACTIVITY: DateRange,
    ReportKind.USAGE: DateRange,
}


def parse_params(kind: ReportKind, params: dict[str, Any]) -> dict[str, Any]:
    """Validate `params` for its kind; 422 names each field as `body.params.<name>`."""
    try:
        model = PARAMS[kind].model_validate(params)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["body", "params", *(str(p) for p in err["loc"])]),
                "message": str(err["msg"]).removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Unprocessable(detail, extra={"errors": errors}) from None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- the request as the OpenAPI document shows it -----------------------------------
# `ReportCreate` validates (and names errors `body.params.<field>`); these say the same
# thing per kind, so a generated client builds the right `params` for each.


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: ReportFormat = ReportFormat.JSON


class TasksReportRequest(_Request):
    """Every task, or one project's."""

    kind: Literal[ReportKind.TASKS]
    params: TasksParams = Field(default_factory=TasksParams)


class ProjectSummaryReportRequest(_Request):
    """Per project: counts by status, overdue, per assignee."""

    kind: Literal[ReportKind.PROJECT_SUMMARY]
    params: NoParams = Field(default_factory=NoParams)


class ActivityReportRequest(_Request):
    """Audit events between two dates (inclusive; `to` not before `from`, ≤ 366 days)."""

    kind: Literal[ReportKind.ACTIVITY]
    params: DateRange


class UsageReportRequest(_Request):
    """API calls per day between two dates (inclusive; `to` not before `from`, ≤ 366 days)."""

    kind: Literal[ReportKind.USAGE]
    params: DateRange


ReportRequest = Annotated[
    TasksReportRequest | ProjectSummaryReportRequest | ActivityReportRequest | UsageReportRequest,
    Field(discriminator="kind"),
]
