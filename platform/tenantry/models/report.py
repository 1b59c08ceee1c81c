from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tenantry.models.base import IDModel, StrEnumType, TenantScoped, Timestamped


class ReportKind(StrEnum):
    TASKS = "tasks"
    PROJECT_SUMMARY = "project_summary"
    ACTIVITY = "activity"
    USAGE = "usage"


class ReportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ReportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Report(IDModel, TenantScoped, Timestamped, table=True):
    """A report request and its durable status; ARQ's own result key lasts an hour."""

    __tablename__ = "reports"
    __table_args__ = (sa.Index("ix_reports_tenant_created", "tenant_id", "created_at", "id"),)

    requested_by: uuid.UUID | None = Field(default=None)
    kind: ReportKind = Field(sa_type=StrEnumType(ReportKind, 30))
    format: ReportFormat = Field(sa_type=StrEnumType(ReportFormat, 10))
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    status: ReportStatus = Field(default=ReportStatus.QUEUED, sa_type=StrEnumType(ReportStatus))
    attempts: int = 0
    error: str | None = Field(default=None, max_length=500)
    started_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    size_bytes: int | None = None
    row_count: int | None = None


class ReportChunk(TenantScoped, SQLModel, table=True):
    """One slice of a finished report's file, so API and workers share storage without
    sharing a disk; written by the worker in the transaction that marks it succeeded."""

    __tablename__ = "report_chunks"

    report_id: uuid.UUID = Field(foreign_key="reports.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)


class ApiUsageDaily(TenantScoped, SQLModel, table=True):
    """API calls per tenant per day, flushed from Redis counters by a cron job."""

    __tablename__ = "api_usage_daily"

    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", primary_key=True, ondelete="CASCADE")
    day: date = Field(primary_key=True)
    calls: int = Field(default=0, sa_type=sa.BigInteger)
