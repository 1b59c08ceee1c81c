"""Report contents, streamed: rows come from server-side cursors and leave as bytes, so
a 100k-row report never holds 100k objects."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.kit.csv import cell
from tenantry.models import Report, ReportFormat, ReportKind
from tenantry.tasks.schemas import TASK_FIELDS

Row = dict[str, Any]
RowSource = Callable[[AsyncSession, Report], AsyncIterator[Row]]


def _same(row: Row) -> Row:
    return row


@dataclass(frozen=True)
class Shape:
    source: RowSource
    columns: tuple[str, ...]
    json_key: str = "items"
    # How a (possibly nested) JSON row becomes a flat CSV row.
    flatten: Callable[[Row], Row] = _same


async def _stream(session: AsyncSession, sql: str, params: dict[str, Any]) -> AsyncIterator[Row]:
    result = await session.stream(sa.text(sql), params)
    async for partition in result.mappings().partitions(500):
        for row in partition:
            yield dict(row)


def _day_bounds(report: Report) -> dict[str, Any]:
    start = date.fromisoformat(report.params["from"])
    end = date.fromisoformat(report.params["to"])
    return {"start": start, "end": end, "end_exclusive": end + timedelta(days=1)}


async def activity_rows(session: AsyncSession, report: Report) -> AsyncIterator[Row]:
    bounds = _day_bounds(report)
    sql = """
        SELECT id, created_at, action, actor_user_id, actor_api_key_id, target_type,
               target_id, ip, user_agent
        FROM audit_events
        WHERE tenant_id = :tenant_id
          AND created_at >= CAST(:start AS date) AND created_at < CAST(:end_exclusive AS date)
        ORDER BY created_at, id
    """
    params = {"tenant_id": report.tenant_id, **bounds}
    async for row in _stream(session, sql, params):
        yield row


async def usage_rows(session: AsyncSession, report: Report) -> AsyncIterator[Row]:
    bounds = _day_bounds(report)
    sql = """
        SELECT d::date AS date, COALESCE(u.calls, 0) AS calls
        FROM generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') AS d
        LEFT JOIN api_usage_daily u ON u.tenant_id = :tenant_id AND u.day = d::date
        ORDER BY d
    """
    async for row in _stream(session, sql, {"tenant_id": report.tenant_id, **bounds}):
        yield row


TASK_COLUMNS = TASK_FIELDS


async def task_rows(session: AsyncSession, report: Report) -> AsyncIterator[Row]:
    """Every task of the tenant (or of `params.project_id`), with the API's task fields."""
    sql = f"""
        SELECT {", ".join(TASK_COLUMNS)} FROM tasks
        WHERE tenant_id = :tenant_id
          AND (CAST(:project_id AS uuid) IS NULL OR project_id = CAST(:project_id AS uuid))
        ORDER BY created_at, id
    """
    params = {"tenant_id": report.tenant_id, "project_id": report.params.get("project_id")}
    async for row in _stream(session, sql, params):
        yield row


_SUMMARY_SQL = """
    WITH per_assignee AS (
        SELECT project_id, assignee_id, count(*) AS n
        FROM tasks
        WHERE tenant_id = :tenant_id AND assignee_id IS NOT NULL
        GROUP BY project_id, assignee_id
    ),
    by_assignee AS (
        SELECT pa.project_id,
               jsonb_agg(
                   jsonb_build_object('user_id', pa.assignee_id, 'username', u.username,
                                      'count', pa.n)
                   ORDER BY pa.n DESC, u.username
               ) AS by_assignee
        FROM per_assignee pa JOIN users u ON u.id = pa.assignee_id
        GROUP BY pa.project_id
    )
    SELECT p.id AS project_id, p.name,
           count(t.id) FILTER (WHERE t.status = 'todo') AS todo,
           count(t.id) FILTER (WHERE t.status = 'doing') AS doing,
           count(t.id) FILTER (WHERE t.status = 'done') AS done,
           count(t.id) FILTER (WHERE t.due_date < :today AND t.status <> 'done') AS overdue,
           COALESCE(b.by_assignee, '[]'::jsonb)::text AS by_assignee
    FROM projects p
    LEFT JOIN tasks t ON t.tenant_id = p.tenant_id AND t.project_id = p.id
    LEFT JOIN by_assignee b ON b.project_id = p.id
    WHERE p.tenant_id = :tenant_id
    GROUP BY p.id, p.name, b.by_assignee
    ORDER BY p.name, p.id
"""


async def project_summary_rows(session: AsyncSession, report: Report) -> AsyncIterator[Row]:
    """Per project: counts by status, overdue (due before today, not done), per assignee."""
    params = {"tenant_id": report.tenant_id, "today": datetime.now(UTC).date()}
    async for row in _stream(session, _SUMMARY_SQL, params):
        yield {
            "project_id": row["project_id"],
            "name": row["name"],
            "counts": {"todo": row["todo"], "doing": row["doing"], "done": row["done"]},
            "overdue": row["overdue"],
            "by_assignee": orjson.loads(row["by_assignee"]),
        }


def _flat_summary(row: Row) -> Row:
    return {**row, **row["counts"]}


SHAPES: dict[ReportKind, Shape] = {
    ReportKind.TASKS: Shape(task_rows, TASK_COLUMNS),
    ReportKind.PROJECT_SUMMARY: Shape(
        project_summary_rows,
        ("project_id", "name", "todo", "doing", "done", "overdue"),
        json_key="projects",
        flatten=_flat_summary,
    ),
    ReportKind.ACTIVITY: Shape(
        activity_rows,
        (
            "id",
            "created_at",
            "action",
            "actor_user_id",
            "actor_api_key_id",
            "target_type",
            "target_id",
            "ip",
            "user_agent",
        ),
    ),
    ReportKind.USAGE: Shape(usage_rows, ("date", "calls")),
}


def _json_default(value: Any) -> Any:
    return str(value)


class Counter:
    def __init__(self) -> None:
        self.rows = 0


async def render(session: AsyncSession, report: Report, counter: Counter) -> AsyncIterator[bytes]:
    shape = SHAPES[report.kind]
    rows = shape.source(session, report)
    if report.format is ReportFormat.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(shape.columns)
        async for row in rows:
            counter.rows += 1
            flat = shape.flatten(row)
            writer.writerow([cell(flat.get(column)) for column in shape.columns])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()
        return
    yield b'{"' + shape.json_key.encode() + b'":['
    first = True
    async for row in rows:
        counter.rows += 1
        yield (b"" if first else b",") + orjson.dumps(row, default=_json_default)
        first = False
    yield b"]}"


def needs_usage_flush(kind: ReportKind) -> bool:
    """Usage counts wait in Redis until the cron flushes them; flush first so a usage
    report includes today's calls."""
    return kind is ReportKind.USAGE
