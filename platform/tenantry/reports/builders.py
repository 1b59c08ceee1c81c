"""Report contents, streamed: rows come from server-side cursors and leave as bytes, so
a 100k-row report never holds 100k objects."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.models import Report, ReportFormat, ReportKind

Row = dict[str, Any]
RowSource = Callable[[AsyncSession, Report], AsyncIterator[Row]]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Shape:
    source: RowSource
    columns: tuple[str, ...]
    json_key: str = "items"


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


SHAPES: dict[ReportKind, Shape] = {
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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    # Spreadsheets execute cells that start like a formula; quote them as text.
    return "'" + text if text.startswith(_FORMULA_START) else text


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
            writer.writerow([_cell(row.get(column)) for column in shape.columns])
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


def supported(kind: ReportKind) -> bool:
    return kind in SHAPES


def needs_usage_flush(kind: ReportKind) -> bool:
    """Usage counts wait in Redis until the cron flushes them; flush first so a usage
    report includes today's calls."""
    return kind is ReportKind.USAGE
